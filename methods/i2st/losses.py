"""I2ST training losses (Sec. 3.3 Eq. 3, Sec. 3.5 Eq. 7, Sec. 4.1.2).

    L = L_CE + lambda * L_Mask  (Eq. 7)  [+ w * L_con, the auxiliary contrastive loss of Sec. 4.1.2]

- L_CE: cross-entropy of the Global-Local Prototype Matching logits (Eq. 6) of the queries.
- L_Mask (Eq. 3): the L2 distance between predicted and given instance masks. We average the
  squared error over pixels, frames and videos; Eq. 3's sum over the N videos is a constant
  factor that lambda absorbs.
- L_con: the paper only says it "appl[ies] an auxiliary contrastive loss to stabilize the
  training process as in" BiCML (Wang et al. 2021a), HCL (Zheng et al. 2022), CLIP-FSAR and MoLo.
  What those share is a class-supervised contrast between videos (BiCML and HCL use supervised
  contrastive losses; CLIP-FSAR and MoLo contrast a video with all training classes). We
  implement the parameter-free form: a supervised contrastive loss (Khosla et al., 2020) over the
  global prototypes f~^token of all videos of the episode, positives = the other videos of the
  same class. It needs no classifier over the training classes (so the model does not depend on
  the training dataset) and is defined for any way/shot with at least 2 videos per class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def mask_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Eq. 3: mean squared error between masks pred and target [N, H, W] (values 0..1)."""
    return F.mse_loss(pred, target.to(pred.dtype))


def supervised_contrastive(features: Tensor, labels: Tensor, temperature: float = 0.1) -> Tensor:
    """SupCon loss of features [N, D] with labels [N] (cosine similarities / temperature).

    For each anchor i with positives P(i) (same label, j != i):
        l_i = -1/|P(i)| sum_{p in P(i)} log( exp(s_ip) / sum_{a != i} exp(s_ia) ),
    averaged over the anchors that have at least one positive (0 if none has).
    """
    z = F.normalize(features, dim=-1)
    sim = z @ z.t() / temperature
    n = sim.shape[0]
    self_mask = torch.eye(n, dtype=torch.bool, device=sim.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~self_mask
    n_pos = pos.sum(dim=1)
    has = n_pos > 0
    if not has.any():
        return features.sum() * 0.0
    per_anchor = -(log_prob.masked_fill(~pos, 0.0).sum(dim=1)[has] / n_pos[has])
    return per_anchor.mean()
