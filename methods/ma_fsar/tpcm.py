"""Text-guided Prototype Construction Module (TPCM), MA-FSAR Sec. 3.4, Eqs. 9-12.

Support video m (adapted frame features F_S^m [T, D'], class text F_T^m [D']):
    q = F_S^m + Repeat(F_T^m)                        (Eq. 9)
    k = v = Concat([F_S^m, F_T^m])   [T+1, D']        (Eq. 10)
    F~ = q + MHA(q, k, v)                             (Eq. 11)
    F~ = F~ + FFN(F~)                                 (Eq. 12)
Query video: q = k = v = F_Q (no text). One set of weights serves both branches.

The paper does not detail MHA/FFN: they are CLIP-FSAR's one-layer `Transformer_v1`
(`fsar_methods._clip.attention.AttentionLayer`, shared with CLIP-FSAR). At D' = 512 it has
3,149,824 parameters, exactly the 3.15 M tunable parameters of the "Frozen" row of MA-FSAR Table 4
(TPCM is the only trainable part there).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fsar_methods._clip.attention import AttentionLayer


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
