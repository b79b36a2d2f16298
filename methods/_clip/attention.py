"""CLIP-FSAR's one-layer temporal transformer `Transformer_v1` (notes/clip_fsar.md Sec. 3).

One LayerNorm shared by q, k and v, bias-free q/k/v maps, 8 heads, output Linear + Dropout(0.2),
residual on the raw q; FFN D'->2048->D' with GELU and Dropout(0.05), residual, no further norm.
It is CLIP-FSAR's prototype-modulation layer and the MHA + FFN of MA-FSAR's TPCM (Eqs. 11-12).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class AttentionLayer(nn.Module):
    """x = q + Dropout(W_o MHA(LN q, LN kv, LN kv));  x = x + FFN(x).   q [N, Lq, D], kv [N, Lk, D]."""

    def __init__(self, dim: int, heads: int = 8, ffn_dim: int = 2048, attn_dropout: float = 0.2,
                 ffn_dropout: float = 0.05) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} does not split into {heads} heads")
        self.heads = int(heads)
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(attn_dropout))
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), nn.Dropout(ffn_dropout),
                                 nn.Linear(ffn_dim, dim), nn.Dropout(ffn_dropout))

    def _split(self, x: Tensor) -> Tensor:
        n, length, dim = x.shape
        return x.view(n, length, self.heads, dim // self.heads).transpose(1, 2)

    def forward(self, q: Tensor, kv: Tensor) -> Tensor:
        qn, kvn = self.norm(q), self.norm(kv)
        att = F.scaled_dot_product_attention(self._split(self.to_q(qn)), self._split(self.to_k(kvn)),
                                             self._split(self.to_v(kvn)))
        x = q + self.out(att.transpose(1, 2).reshape(q.shape))
        return x + self.ffn(x)
