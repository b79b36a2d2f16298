"""Spatial Cross-Attention metric (SCA) of SA-CT (Zhang et al., "On the Importance of Spatial
Relations for Few-shot Action Recognition", ACM MM 2023), as implemented in DMGAL's public code.

Frame by frame, every query patch attends to the patches of all support videos of a class at
the same frame index; the attention-weighted support patches form a query-specific prototype
that is spatially re-arranged to the query, so objects at different positions are aligned
before the patches are compared.

The squared distance to the prototype is expanded as |x|^2 - 2 a.(K x) + a^T (K K^T) a (keys
are the values here), so the [pairs, T, P, D] prototype tensor is never materialised.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from fsar_bench.protocol import Features, Matcher, group_by_class


class SCA(Matcher):
    """logit(q, c) = -1/(L^2 P) sum_{t, p} |x_{q,t,p} - sum_{k, p'} a_{t,p,(k,p')} x_{ck,t,p'}|^2,

    a_{t,p,.} = softmax over the shots k and patches p' of the class at frame t of
    <x_{q,t,p}, x_{ck,t,p'}> * scale, scale = 1/sqrt(D) by default. Input: patch features
    [E, N, T, P, D] (L = T frames, P patches per frame). The 1/(L^2 P) normalisation is the one
    of DMGAL's implementation.

    k-shot rule: the attention runs jointly over the patches of all shots of a class (K*P keys
    per frame); no averaging of features or distances.

    Args:
        scale: attention temperature; None = 1/sqrt(D).
    """

    def __init__(self, scale: float | None = None) -> None:
        super().__init__()
        self.scale = scale

    def score_batch(self, query: Features, support: Features, support_labels: Tensor, way: int,
                    **kwargs: Any) -> Tensor:
        if not isinstance(query, Tensor) or not isinstance(support, Tensor) or query.dim() != 5:
            raise TypeError("SCA takes patch features [E, N, T, P, D]")
        e, n_q, frames, patches, dim = query.shape
        s = group_by_class(support, support_labels, way)  # [E, way, K, T, P, D]
        k = s.shape[2]
        keys = s.permute(0, 1, 3, 2, 4, 5).reshape(e, way, frames, k * patches, dim)  # [E, way, T, K*P, D]
        scale = self.scale if self.scale is not None else 1.0 / math.sqrt(dim)
        dots = torch.einsum("eqtpd,ewtjd->eqwtpj", query, keys)  # [E, Q, way, T, P, K*P]
        attn = torch.softmax(dots * scale, dim=-1)
        gram = keys @ keys.transpose(-1, -2)  # [E, way, T, K*P, K*P]
        a_gram = torch.einsum("eqwtpj,ewtjl->eqwtpl", attn, gram)
        sq = query.pow(2).sum(dim=-1)[:, :, None]  # [E, Q, 1, T, P]
        dist = sq - 2 * (attn * dots).sum(dim=-1) + (a_gram * attn).sum(dim=-1)  # [E, Q, way, T, P]
        return -dist.sum(dim=(-1, -2)) / (frames * frames * patches)
