"""DMGAL: Video-to-Task Learning via Motion-Guided Attention for Few-Shot Action Recognition
(Guo, Yu, Que, Du, Yan, Wang; arXiv:2411.11335). Paper: /work/shared/papers/dmgal.txt;
docs: docs/methods/dmgal.md.

motion.py    Eqs. 1-3: bidirectional multi-scale motion extraction (+ the release/paper switches)
smga.py      Eqs. 4-9: S-MGA (motion-guided self-attention + temporal MLP-mixer), per video
cmga.py      Eqs. 10-14: C-MGA (frame-wise / frame-all cross attention to the support set), per task
adapters.py  Eqs. 16-17: Smga-Adapter and Cmga-Adapter
matchers.py  the task-level heads: C-MGA + metric, last ViT block with the Cmga-Adapter + metric
dmgal_ft.py       `dmgal_ft`: ImageNet ResNet-50, full fine-tuning (Sec. III-C1)
dmgal_adapter.py  `dmgal_adapter`: frozen CLIP ViT-B/16 + adapters (Sec. III-C2)
"""

from fsar_methods.dmgal.dmgal_adapter import DMGALAdapter
from fsar_methods.dmgal.dmgal_ft import DMGALFT

__all__ = ["DMGALFT", "DMGALAdapter"]
