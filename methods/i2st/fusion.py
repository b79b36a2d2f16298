"""Global fusion sub-module (I2ST Sec. 3.4, Eq. 5, second line).

    f~ = MHA([f^token, f^ST] + f_pos),

with f^token in R^C a learnable token, f^ST [T, C] the spatial-temporal feature and
f_pos in R^{(T+1) x C} learnable position embeddings. The output at the token, f~^token, is the
global prototype; the outputs at the frames, f~^1..f~^T, are the local prototypes that
Global-Local Prototype Matching (Eq. 6) compares.

As in the S/T branches, a LayerNorm precedes the attention (our choice; the paper writes no
normalisation). The paper writes no residual or FFN here, and none is added.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class GlobalFusion(nn.Module):
    """[B, T, C] -> (frames [B, T, C], global [B, C])."""

    def __init__(self, dim: int, heads: int, frames: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.zeros(dim))
        self.pos = nn.Parameter(torch.zeros(frames + 1, dim))
        nn.init.trunc_normal_(self.token, std=0.02)
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)

    def forward(self, f_st: Tensor) -> tuple[Tensor, Tensor]:
        b, t, _ = f_st.shape
        if t + 1 != self.pos.shape[0]:
            raise ValueError(f"the global fusion was built for {self.pos.shape[0] - 1} frames, got {t}")
        x = torch.cat([self.token.expand(b, 1, -1), f_st], dim=1) + self.pos
        x = self.norm(x)
        out = self.attn(x, x, x, need_weights=False)[0]
        return out[:, 1:], out[:, 0]
