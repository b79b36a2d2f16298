"""Shared pieces of the frame-level matchers: the cosine frame distance and the k-shot rules.

The frame distance of OTAM, Bi-MHM and the global-local metric is the one of the public
reference code (OTAM as re-implemented in TRX, HyRSM, CLIP-FSAR):

    d(a, b) = 1 - <a, b> / (|a| |b| + eps),   eps = 0.01,

which is not exactly 1 - cos(a, b): the 0.01 shrinks the similarity of short vectors.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fsar_bench.protocol import group_by_class

FRAME_EPS = 0.01
KSHOT_RULES = ("prototype", "distance")


def pairwise_frame_distance(query: Tensor, support: Tensor, eps: float = FRAME_EPS) -> Tensor:
    """query [E, Q, L, D], support [E, N, M, D] -> frame distances [E, Q, N, L, M].

    One batched matrix product per episode (no expansion of the inputs over pairs).
    """
    dots = torch.einsum("eqld,enmd->eqnlm", query, support)
    qn = query.norm(dim=-1)  # [E, Q, L]
    sn = support.norm(dim=-1)  # [E, N, M]
    den = qn[:, :, None, :, None] * sn[:, None, :, None, :] + eps
    return 1 - dots / den


def check_kshot(kshot: str) -> str:
    if kshot not in KSHOT_RULES:
        raise ValueError(f"kshot must be one of {KSHOT_RULES}, not {kshot!r}")
    return kshot


def supports_for_rule(support: Tensor, support_labels: Tensor, way: int, kshot: str) -> Tensor:
    """[E, S, ...] -> [E, way, K', ...]: the shots of each class (K' = shot for the 'distance'
    rule) or their feature average (K' = 1 for the 'prototype' rule)."""
    grouped = group_by_class(support, support_labels, way)
    return grouped.mean(dim=2, keepdim=True) if kshot == "prototype" else grouped
