"""Global-Local Prototype Matching (I2ST; "Joint Image-Instance Spatial-Temporal Attention for
Few-shot Action Recognition", Sec. 3.5, Eq. 6).

Eq. 6 of the paper reads D_{i,q} = M([f_i^1..f_i^T], [f_q^1..f_q^T]) + Sim(f_i^token, f_q^token),
with M the frame-level metric (Bi-MHM in I2ST) and Sim the cosine similarity, and says D is used
as the logits. Taken literally this adds a distance (Bi-MHM: lower = closer) to a similarity
(higher = closer). The matcher implements the sign-consistent reading, in which the logit grows
with both the frame-level closeness and the global similarity:

    logit(q, c) = -BiMHM(q, p_c) + global_weight * cos(g_q, g_c).

The paper has no weight in Eq. 6 (the text says "weighted average" but gives no weights), so
`global_weight` defaults to 1. The balance of the two terms also depends on the Bi-MHM
reduction: with reduction='sum' (HyRSM's code) the frame term is T times larger.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from fsar_bench.matchers._frame_distance import check_kshot, supports_for_rule
from fsar_bench.matchers.bimhm import REDUCTIONS, bimhm_distance
from fsar_bench.protocol import Features, Matcher


class GlobalLocal(Matcher):
    """logit(q, c) = -BiMHM(f_q^{1..T}, p_c^{1..T}) + w * cos(f_q^token, p_c^token).

    Input: a mapping {"frames": [E, N, T, D] local (per-frame) features, "global": [E, N, D]
    global-token features}. BiMHM is the frame metric of `fsar_bench.matchers.bimhm`
    (1 - <a, b> / (|a| |b| + 0.01) frame distance); cos is the plain cosine similarity.

    k-shot rules: 'prototype' (default; I2ST uses "the averaged prototype paradigm"): frame and
    global features are averaged over the shots of a class before matching. 'distance': the
    per-video logits are averaged over the shots.

    Args:
        global_weight: w, the weight of the global similarity (1 = Eq. 6).
        reduction: Bi-MHM reduction over frames, 'mean' (paper) or 'sum' (reference code).
        kshot: 'prototype' or 'distance'.
    """

    def __init__(self, global_weight: float = 1.0, reduction: str = "mean", kshot: str = "prototype") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, not {reduction!r}")
        self.global_weight = float(global_weight)
        self.reduction = reduction
        self.kshot = check_kshot(kshot)

    @staticmethod
    def _streams(x: Features) -> tuple[Tensor, Tensor]:
        if not isinstance(x, Mapping) or "frames" not in x or "global" not in x:
            raise TypeError('the global-local matcher takes {"frames": [E, N, T, D], "global": [E, N, D]}')
        return x["frames"], x["global"]

    def score_batch(self, query: Features, support: Features, support_labels: Tensor, way: int,
                    **kwargs: Any) -> Tensor:
        q_frames, q_global = self._streams(query)
        s_frames, s_global = self._streams(support)
        sf = supports_for_rule(s_frames, support_labels, way, self.kshot)  # [E, way, K', T, D]
        sg = supports_for_rule(s_global, support_labels, way, self.kshot)  # [E, way, K', D]
        e, w, k = sf.shape[:3]
        local = -bimhm_distance(q_frames, sf.flatten(1, 2), self.reduction)  # [E, Q, way*K']
        cos = F.normalize(q_global, dim=-1) @ F.normalize(sg.flatten(1, 2), dim=-1).transpose(-1, -2)
        logits = local + self.global_weight * cos
        return logits.view(e, q_frames.shape[1], w, k).mean(dim=-1)
