"""ST-Adapter (Pan et al., NeurIPS 2022) as the adapter-tuning FSAR baseline of DMGAL (Eq. 15).

adapter.py: the ST-Adapter module; vit.py: the frozen CLIP ViT run block by block with adapters
(shared with DMGAL-Adapter); method.py: the `st_adapter` method. Docs: docs/methods/st_adapter.md.
"""

from fsar_methods.st_adapter.adapter import STAdapterModule
from fsar_methods.st_adapter.method import STAdapter
from fsar_methods.st_adapter.vit import FrozenViT

__all__ = ["FrozenViT", "STAdapter", "STAdapterModule"]
