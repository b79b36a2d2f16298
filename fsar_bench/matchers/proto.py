"""Prototype matcher (ProtoNet, Snell et al. 2017), the simplest few-shot metric.

Each video is reduced to one vector by averaging its frame features; a class prototype is the
mean of its support vectors (k-shot rule: feature averaging); the logit of a query for a class
is the cosine similarity to the prototype times a scale, or the negative squared Euclidean
distance.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from fsar_bench.protocol import Features, Matcher, group_by_class


def _as_video_vectors(x: Features) -> Tensor:
    """[..., T, D] frame features (or [..., D] video features) -> [..., D]."""
    if not isinstance(x, Tensor):
        raise TypeError("the prototype matcher takes a tensor of features")
    return x.mean(dim=-2) if x.dim() >= 4 else x


class PrototypeMatcher(Matcher):
    """logit(q, c) = s * cos(mean_t q_t, mean_k mean_t s_{c,k,t})  or  -|q - p_c|^2.

    Args:
        distance: 'cosine' (default) or 'euclidean'.
        scale: multiplier of the cosine similarity (a temperature); ignored for 'euclidean'.
    """

    def __init__(self, distance: str = "cosine", scale: float = 10.0) -> None:
        super().__init__()
        if distance not in ("cosine", "euclidean"):
            raise ValueError(f"distance must be 'cosine' or 'euclidean', not {distance!r}")
        self.distance = distance
        self.scale = scale

    def score_batch(self, query: Features, support: Features, support_labels: Tensor, way: int,
                    **kwargs: Any) -> Tensor:
        q = _as_video_vectors(query)  # [E, Q, D]
        s = _as_video_vectors(support)  # [E, S, D]
        protos = group_by_class(s, support_labels, way).mean(dim=2)  # [E, way, D]
        if self.distance == "cosine":
            return self.scale * torch.einsum("eqd,ewd->eqw", F.normalize(q, dim=-1), F.normalize(protos, dim=-1))
        return -torch.cdist(q, protos).pow(2)
