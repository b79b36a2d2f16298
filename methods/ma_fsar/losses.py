"""Metric losses and predictions of MA-FSAR, Sec. 3.5, Eqs. 14-17.

Video-text similarity (Eqs. 14-15): cosine of the temporally averaged adapted feature (F_S^{m-avg},
F_q^{avg}: before TPCM) with the class text F_T^m, times CLIP's temperature (logit_scale, frozen),
softmax over the episode's classes -> p_S2T, p_Q2T.

L_S2T, L_Q2T: the Kullback-Leibler divergence of p_S2T / p_Q2T from the ground-truth distribution
over the episode's classes (ActionCLIP-style "video-text contrastive" loss; the episode's class texts
are distinct, so the target is one-hot and KL equals cross-entropy). L_Q2S: cross-entropy of the
metric's logits (Eq. 13).

    L = alpha * (L_S2T + L_Q2T) / 2 + (1 - alpha) * L_Q2S        (Eq. 16)
    p = alpha * p_Q2T + (1 - alpha) * p_Q2S                       (Eq. 17)
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from fsar_methods._clip.text import class_text, video_text_logits  # noqa: F401  (Eqs. 14-15, shared)


def video_text_kl(logits: Tensor, labels: Tensor) -> Tensor:
    """KL(target || softmax(logits)) with a one-hot target; logits [N, C], labels [N]."""
    target = F.one_hot(labels, logits.shape[-1]).to(logits.dtype)
    return F.kl_div(F.log_softmax(logits, dim=-1), target, reduction="batchmean")


def total_loss(alpha: float, l_s2t: Tensor, l_q2t: Tensor, l_q2s: Tensor) -> Tensor:
    """Eq. 16."""
    return alpha * 0.5 * (l_s2t + l_q2t) + (1.0 - alpha) * l_q2s


def fused_log_probs(q2t_logits: Tensor, q2s_logits: Tensor, alpha: float) -> Tensor:
    """Eq. 17, returned as log p (same argmax as p; a valid logit for cross-entropy)."""
    p = alpha * q2t_logits.softmax(dim=-1) + (1.0 - alpha) * q2s_logits.softmax(dim=-1)
    return p.clamp_min(1e-12).log()
