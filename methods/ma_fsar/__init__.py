"""MA-FSAR (Xing et al., "MA-FSAR: Multimodal Adaptation of CLIP for few-shot action recognition").

Modules, one concept each: `adapter` (Fig. 3(a)), `backbone` (CLIP loading and ViT token helpers),
`text` (prompt templates of Table 10 and the frozen text encoder), `fgma` (Sec. 3.3, Eqs. 4-8),
`tpcm` (Sec. 3.4, Eqs. 9-12), `matching` (TPCM before the metric, Eq. 13), `losses` (Eqs. 14-17),
`optim`, and `method` (the `MAFSAR` plugin). The CLIP baselines (fsar_methods.clip_baselines)
reuse these pieces.
"""

from fsar_methods.ma_fsar.method import MAFSAR

__all__ = ["MAFSAR"]
