"""Bidirectional Mean Hausdorff Metric (Bi-MHM; Wang et al., "Hybrid Relation Guided Set
Matching for Few-shot Action Recognition" (HyRSM), CVPR 2022).

A set-matching metric that ignores frame order: every query frame is matched to its nearest
support frame and every support frame to its nearest query frame, so the metric tolerates
misaligned and partly irrelevant frames.

Constant factor vs the reference code: the paper averages over frames (the default,
reduction='mean'); HyRSM's code sums (`frame_dists.min(3)[0].sum(2) + frame_dists.min(2)[0].sum(2)`),
which is T times the mean when query and support both have T frames (reduction='sum'). The
factor acts as a temperature on the logits, so it matters for training and for metrics combined
with other terms (the global-local metric), not for the argmax.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from fsar_bench.matchers._frame_distance import check_kshot, pairwise_frame_distance, supports_for_rule
from fsar_bench.protocol import Features, Matcher

REDUCTIONS = ("mean", "sum")


def bimhm_distance(query: Tensor, support: Tensor, reduction: str = "mean") -> Tensor:
    """query [E, Q, L, D], support [E, N, M, D] -> Bi-MHM distances [E, Q, N]."""
    d = pairwise_frame_distance(query, support)  # [E, Q, N, L, M]
    q_side = d.min(dim=-1).values  # nearest support frame of each query frame [E, Q, N, L]
    s_side = d.min(dim=-2).values  # nearest query frame of each support frame [E, Q, N, M]
    if reduction == "mean":
        return q_side.mean(dim=-1) + s_side.mean(dim=-1)
    return q_side.sum(dim=-1) + s_side.sum(dim=-1)


class BiMHM(Matcher):
    """logit(q, c) = -[ mean_l min_m d(q_l, p_m) + mean_m min_l d(q_l, p_m) ],

    d(a, b) = 1 - <a, b> / (|a| |b| + 0.01), p = the class prototype (kshot='prototype'). The +0.01 is
    the form of DMGAL's release and MoLo's code (checked by tests/test_golden_dmgal.py); HyRSM's own
    code uses the exact cosine.

    k-shot rules: 'prototype' (default; HyRSM, I2ST): the support frame features are averaged
    over the shots of a class, frame by frame, and the query is matched to that prototype.
    'distance' (DMGAL): the Bi-MHM distances to the individual shots are averaged.

    Args:
        reduction: 'mean' (the paper's equation, default) or 'sum' (HyRSM's code: T times larger).
        kshot: 'prototype' or 'distance'.
    """

    def __init__(self, reduction: str = "mean", kshot: str = "prototype") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, not {reduction!r}")
        self.reduction = reduction
        self.kshot = check_kshot(kshot)

    def class_distances(self, query: Tensor, support: Tensor, support_labels: Tensor, way: int) -> Tensor:
        """Bi-MHM distance of each query to each class under the k-shot rule: [E, Q, way]."""
        s = supports_for_rule(support, support_labels, way, self.kshot)  # [E, way, K', T, D]
        e, w, k = s.shape[:3]
        dist = bimhm_distance(query, s.flatten(1, 2), self.reduction)  # [E, Q, way*K']
        return dist.view(e, query.shape[1], w, k).mean(dim=-1)

    def score_batch(self, query: Features, support: Features, support_labels: Tensor, way: int,
                    **kwargs: Any) -> Tensor:
        if not isinstance(query, Tensor) or not isinstance(support, Tensor):
            raise TypeError("Bi-MHM takes frame features [E, N, T, D]")
        return -self.class_distances(query, support, support_labels, way)
