"""Ordered Temporal Alignment Module (OTAM; Cao et al., "Few-Shot Video Classification via
Temporal Alignment", CVPR 2020).

OTAM scores a query against a support video by a soft (differentiable) dynamic time warping of
their frame-distance matrix, with the start and end of the alignment left free by one padding
column on each side. This follows the public recursion shared by TRX, HyRSM, MoLo and CLIP-FSAR,
including its asymmetric predecessors (three in the first and last column, two elsewhere) and
the sum of both alignment directions.

The recursion is evaluated row by row: along a row the middle cells satisfy a linear
recurrence in exp(-C / lambda), which is a log-cumulative-sum-exp of the prefix sums of the row.
Only the L rows are a Python loop; each row is a few tensor operations batched over all pairs
and columns.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from fsar_bench.matchers._frame_distance import check_kshot, pairwise_frame_distance, supports_for_rule
from fsar_bench.protocol import Features, Matcher


def otam_distance(dists: Tensor, lam: float = 0.1) -> Tensor:
    """One-direction OTAM distance: frame distances [..., L, M] -> [...].

    With D padded by a zero column on each side (columns 0..M+1):
    C[0, m] = sum_{m' <= m} D[0, m'];  for l >= 1: C[l, 0] = 0,
    C[l, 1] = D[l, 1] + softmin(C[l-1, 0], C[l-1, 1], C[l, 0]),
    C[l, m] = D[l, m] + softmin(C[l-1, m-1], C[l, m-1])             (2 <= m <= M),
    C[l, M+1] = D[l, M+1] + softmin(C[l-1, M], C[l-1, M+1], C[l, M]);
    the distance is C[L-1, M+1]. Computed in the dtype of `dists` (pass float64).

    Along row l the middle cells obey exp(-C[l, m]/lam) = exp(-D[l, m]/lam) (exp(-C[l-1, m-1]/lam)
    + exp(-C[l, m-1]/lam)), a linear recurrence; with P_m = sum_{1 <= m' <= m} D[l, m'] it unrolls to
    C[l, m] = P_m + softmin_{j <= m} u_j,  u_1 = C[l, 1] - P_1,  u_j = C[l-1, j-1] - P_{j-1},
    a log-cumulative-sum-exp. Everything below is in units of lam (x = C / lam), where
    softmin(x) = -log sum exp(-x); the padding columns hold D = 0.
    """
    n_rows = dists.shape[-2]
    d = dists / lam
    prefix = d.cumsum(dim=-1)  # [..., L, M]: P_1..P_M of every row
    log2 = torch.tensor(math.log(2.0), dtype=d.dtype, device=d.device)
    prev_mid, prev_last = prefix[..., 0, :], prefix[..., 0, -1]  # C[0, 1..M], C[0, M+1]
    for row in range(1, n_rows):
        p = prefix[..., row, :]
        # C[l, 1]: softmin(0, C[l-1, 1], 0) = -log(2 + exp(-C[l-1, 1]))
        first = d[..., row, 0] - torch.logaddexp(-prev_mid[..., 0], log2)
        u = torch.cat([(first - p[..., 0]).unsqueeze(-1), prev_mid[..., :-1] - p[..., :-1]], dim=-1)
        mid = p - torch.logcumsumexp(-u, dim=-1)  # C[l, 1..M]
        prev_last = -torch.logaddexp(torch.logaddexp(-prev_mid[..., -1], -prev_last), -mid[..., -1])
        prev_mid = mid
    return prev_last * lam


def otam_pair_distance(dists: Tensor, lam: float = 0.1, bidirectional: bool = True) -> Tensor:
    """[..., L, M] -> [...]: OTAM(D) (+ OTAM(D^T) when bidirectional), in float64."""
    d = dists.double()
    if not bidirectional:
        return otam_distance(d, lam)
    if d.shape[-1] == d.shape[-2]:  # both directions in one pass
        both = otam_distance(torch.stack([d, d.transpose(-1, -2)]), lam)
        return both[0] + both[1]
    return otam_distance(d, lam) + otam_distance(d.transpose(-1, -2), lam)


class OTAM(Matcher):
    """logit(q, c) = -mean_k [OTAM(D(q, s_ck)) + OTAM(D(q, s_ck)^T)]   (kshot='distance').

    D[l, m] = 1 - <q_l, s_m> / (|q_l| |s_m| + 0.01) between query frame l and support frame m;
    OTAM(.) is the padded soft-DTW recursion of `otam_distance` with
    softmin(x) = -lam log sum exp(-x / lam).

    k-shot rules: 'distance' (default; HyRSM/MoLo code): the pair distances are averaged over the
    shots of a class. 'prototype' (CLIP-FSAR): the support frame features are averaged over the
    shots first, and the query is aligned with that prototype video.

    Args:
        lam: soft-min temperature lambda (0.1 in the public `OTAM_cum_dist`; CLIP-FSAR and D2ST use 0.5).
        bidirectional: add the alignment of the transposed matrix (support to query), as the
            reference code does; False keeps the query-to-support direction only.
        kshot: 'distance' or 'prototype'.

    The recursion runs in float64 (logits are returned in the input dtype).
    """

    def __init__(self, lam: float = 0.1, bidirectional: bool = True, kshot: str = "distance") -> None:
        super().__init__()
        if lam <= 0:
            raise ValueError(f"lam must be positive, not {lam}")
        self.lam = float(lam)
        self.bidirectional = bool(bidirectional)
        self.kshot = check_kshot(kshot)

    def score_batch(self, query: Features, support: Features, support_labels: Tensor, way: int,
                    **kwargs: Any) -> Tensor:
        if not isinstance(query, Tensor) or not isinstance(support, Tensor):
            raise TypeError("OTAM takes frame features [E, N, T, D]")
        s = supports_for_rule(support, support_labels, way, self.kshot)  # [E, way, K', T, D]
        e, w, k = s.shape[:3]
        dists = pairwise_frame_distance(query, s.flatten(1, 2))  # [E, Q, way*K', L, M]
        total = otam_pair_distance(dists, self.lam, self.bidirectional)  # [E, Q, way*K'] float64
        return -total.view(e, query.shape[1], w, k).mean(dim=-1).to(query.dtype)
