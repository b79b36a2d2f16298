"""Temporal-Relational CrossTransformer (TRX; Perrett et al., "Temporal-Relational
CrossTransformers for Few-Shot Action Recognition", CVPR 2021).

Ordered frame tuples (pairs, triples) of the query attend to all tuples of all support videos of
a class; the attention-weighted support values form a query-specific class prototype, and the
logit is minus the squared distance between the query's values and that prototype. One set of
key/value maps per tuple cardinality; the logits of the cardinalities are averaged. This
follows the public TRX code (also used by STRM and DMGAL): sinusoidal positional encoding scaled
by 0.1, LayerNorm on keys only, attention scaled by 1/sqrt(width), tuple distances summed and
divided by the number of tuples.

The squared distance to the prototype is expanded as |v|^2 - 2 a.(V v) + a^T (V V^T) a, so the
[pairs, tuples, width] prototype tensor is never materialised (memory grows with the number of
tuples instead of the width), and the tuple projections are computed from per-frame
projections (W [x_i; x_j] = W_1 x_i + W_2 x_j), which is c*T instead of c*C(T, c) products.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fsar_bench.protocol import Features, Matcher, group_by_class


def sinusoidal_encoding(length: int, dim: int) -> Tensor:
    """[length, dim]: pe[t, 2i] = sin(t w_i), pe[t, 2i+1] = cos(t w_i), w_i = 10000^(-2i/dim)."""
    position = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float64) * -(math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(position * div)
    pe[:, 1::2] = torch.cos(position * div[: dim // 2])
    return pe


class TRX(Matcher):
    """logit(q, c) = -(1/|Omega|) mean_w sum_{t in Pi_w} |v_q,t - sum_{k,t'} a_{t,(k,t')} v_{ck,t'}|^2.

    For each cardinality w in `cardinalities`, Pi_w are the ordered frame tuples (i < j (< k))
    of the T frames; a tuple's feature p is the concatenation of its frames' features after a
    sinusoidal positional encoding (scaled by `pe_scale`) is added to each frame. Keys are
    LayerNorm(W_k p), values W_v p (query and support share the maps). For a query tuple t,
    a_{t,.} = softmax over all shots k and tuples t' of the class of <key_q,t, key_ck,t'> / sqrt(width).
    The logit is minus the squared distance divided by |Pi_w|, averaged over the cardinalities.

    k-shot rule: the attention (and hence the prototype) runs jointly over the tuples of all
    shots of a class; no averaging of features or distances.

    Args:
        dim: feature width D of the frame features [E, N, T, D].
        cardinalities: tuple sizes (TRX: (2, 3); STRM and DMGAL use (2,)).
        width: key/value width (1152 in TRX).
        max_frames: length of the positional-encoding table (T must not exceed it).
        pe_scale: scale of the positional encoding (0.1).
        dropout: dropout after the positional encoding (training only).
    """

    def __init__(self, dim: int, cardinalities: Sequence[int] = (2, 3), width: int = 1152, max_frames: int = 16,
                 pe_scale: float = 0.1, dropout: float = 0.0) -> None:
        super().__init__()
        self.cardinalities = tuple(int(c) for c in cardinalities)
        if not self.cardinalities or min(self.cardinalities) < 1:
            raise ValueError(f"cardinalities must be positive tuple sizes, not {cardinalities!r}")
        self.dim, self.width, self.max_frames = int(dim), int(width), int(max_frames)
        self.pe_scale = float(pe_scale)
        self.dropout = nn.Dropout(dropout)
        self.key = nn.ModuleList(nn.Linear(c * self.dim, self.width) for c in self.cardinalities)
        self.value = nn.ModuleList(nn.Linear(c * self.dim, self.width) for c in self.cardinalities)
        self.key_norm = nn.ModuleList(nn.LayerNorm(self.width) for _ in self.cardinalities)
        self._tuples: dict[tuple[int, int], Tensor] = {}

    def tuples(self, frames: int, cardinality: int, device: torch.device) -> Tensor:
        """[n_tuples, cardinality] frame indices, itertools.combinations order."""
        key = (frames, cardinality)
        if key not in self._tuples:
            self._tuples[key] = torch.tensor(list(combinations(range(frames), cardinality)), dtype=torch.long)
        return self._tuples[key].to(device)

    def score_batch(self, query: Features, support: Features, support_labels: Tensor, way: int,
                    **kwargs: Any) -> Tensor:
        if not isinstance(query, Tensor) or not isinstance(support, Tensor):
            raise TypeError("TRX takes frame features [E, N, T, D]")
        frames = query.shape[-2]
        if not max(self.cardinalities) <= frames <= self.max_frames or support.shape[-2] != frames:
            raise ValueError(f"TRX needs query and support with the same T, {max(self.cardinalities)} <= T <= "
                             f"max_frames={self.max_frames}; got {frames} and {support.shape[-2]}")
        pe = (sinusoidal_encoding(frames, self.dim) * self.pe_scale).to(query)  # computed in float64
        q = self.dropout(query + pe)  # [E, Q, T, D]
        s = self.dropout(group_by_class(support, support_labels, way) + pe)  # [E, way, K, T, D]
        logits = [self._cardinality_logits(i, c, q, s) for i, c in enumerate(self.cardinalities)]
        return torch.stack(logits).mean(dim=0)

    @staticmethod
    def _tuple_linear(x: Tensor, layer: nn.Linear, idx: Tensor) -> Tensor:
        """layer([x_i; x_j; ...]) for every tuple of `idx` [n, c]: frames [..., T, D] -> [..., n, width].

        W [x_i; x_j; x_k] = W_1 x_i + W_2 x_j + W_3 x_k: each frame is projected once per slot
        (c*T products instead of c*n), then the slot projections are gathered and summed.
        """
        c, dim = idx.shape[1], x.shape[-1]
        out = layer.bias
        for r in range(c):  # slot r of the tuple uses the columns r*D..(r+1)*D of W
            projected = F.linear(x, layer.weight[:, r * dim:(r + 1) * dim])  # [..., T, width]
            out = out + projected[..., idx[:, r], :]
        return out  # [..., n, width]

    def _cardinality_logits(self, i: int, cardinality: int, q: Tensor, s: Tensor) -> Tensor:
        idx = self.tuples(q.shape[-2], cardinality, q.device)  # [n, c]
        q_key = self.key_norm[i](self._tuple_linear(q, self.key[i], idx))  # [E, Q, n, width]
        q_val = self._tuple_linear(q, self.value[i], idx)
        s_key = self.key_norm[i](self._tuple_linear(s, self.key[i], idx))  # [E, way, K, n, width]
        s_val = self._tuple_linear(s, self.value[i], idx)
        e, w, k, n, h = s_key.shape
        s_key, s_val = s_key.reshape(e, w, k * n, h), s_val.reshape(e, w, k * n, h)
        attn = torch.softmax(torch.einsum("eqth,ewjh->eqwtj", q_key, s_key) / math.sqrt(h), dim=-1)
        # |v - a V|^2 = |v|^2 - 2 a.(V v) + a^T (V V^T) a, per query tuple.
        qv_sv = torch.einsum("eqth,ewjh->eqwtj", q_val, s_val)
        gram = s_val @ s_val.transpose(-1, -2)  # [E, way, K*n, K*n]
        a_gram = torch.einsum("eqwtj,ewjl->eqwtl", attn, gram)
        sq = q_val.pow(2).sum(dim=-1)[:, :, None, :]  # [E, Q, 1, n]
        dist = sq - 2 * (attn * qv_sv).sum(dim=-1) + (a_gram * attn).sum(dim=-1)  # [E, Q, way, n]
        return -dist.sum(dim=-1) / n
