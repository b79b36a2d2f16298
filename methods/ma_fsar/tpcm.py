"""Text-guided Prototype Construction Module (TPCM), MA-FSAR Sec. 3.4, Eqs. 9-12.

Support video m (adapted frame features F_S^m [T, D'], class text F_T^m [D']):
    q = F_S^m + Repeat(F_T^m)                        (Eq. 9)
    k = v = Concat([F_S^m, F_T^m])   [T+1, D']        (Eq. 10)
    F~ = q + MHA(q, k, v)                             (Eq. 11)
    F~ = F~ + FFN(F~)                                 (Eq. 12)
Query video: q = k = v = F_Q (no text). One set of weights serves both branches.

The paper does not detail MHA/FFN. `AttentionLayer` is CLIP-FSAR's one-layer `Transformer_v1`
(notes/clip_fsar.md Sec. 3): one LayerNorm shared by q, k and v, bias-free q/k/v maps, 8 heads,
output Linear + Dropout(0.2), residual on the raw q; FFN D'->2048->D' with GELU and Dropout(0.05),
residual, no further norm. At D' = 512 it has 3,149,824 parameters, exactly the 3.15 M tunable
parameters of the "Frozen" row of MA-FSAR Table 4 (TPCM is the only trainable part there). The
same layer is CLIP-FSAR's temporal transformer (fsar_methods.clip_baselines.clip_fsar).
"""

from __future__ import annotations

import torch
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


class TPCM(nn.Module):
    """frames [N, T, D'] (+ text [N, D'] for supports) -> enhanced frames [N, T, D'] (Eqs. 9-12)."""

    def __init__(self, dim: int, heads: int = 8, ffn_dim: int = 2048, attn_dropout: float = 0.2,
                 ffn_dropout: float = 0.05) -> None:
        super().__init__()
        self.layer = AttentionLayer(dim, heads, ffn_dim, attn_dropout, ffn_dropout)

    def forward(self, frames: Tensor, text: Tensor | None = None) -> Tensor:
        if text is None:
            return self.layer(frames, frames)
        q = frames + text.unsqueeze(1)  # Eq. 9
        kv = torch.cat([frames, text.unsqueeze(1)], dim=1)  # Eq. 10
        return self.layer(q, kv)  # Eqs. 11-12
