"""CLIP baselines of MA-FSAR's comparison tables, built from the pieces of fsar_methods.ma_fsar:

- `AIM` ("AIM (OTAM)", MA-FSAR Tables 1-2): AIM's spatial, temporal and joint adapters in a frozen
  CLIP ViT, OTAM head, no text.
- `CLIPFSAR` (CLIP-FSAR, IJCV 2023): fine-tuned CLIP visual encoder, text stacked with the support
  frames before a temporal transformer, OTAM (lambda 0.5), video-text CE over the training classes.
- `CLIPZeroShot` ("CLIP-Freeze", MA-FSAR Table 11): frozen CLIP, queries against class texts; shot 0.
"""

from fsar_methods.clip_baselines.aim import AIM
from fsar_methods.clip_baselines.clip_fsar import CLIPFSAR
from fsar_methods.clip_baselines.clip_zeroshot import CLIPZeroShot

__all__ = ["AIM", "CLIPFSAR", "CLIPZeroShot"]
