"""The ST-Adapter module (Pan et al., NeurIPS 2022), as DMGAL's Eq. 15 writes it:

    ST-Adapter(X) = X + DWConv3D(X W_down) W_up

Reference conventions (repo linziyi96/st-adapter, `models_adapter.py` L18-55; adapters.md section 1):
no activation anywhere; the depth-wise Conv3d has kernel (3, 1, 1) (time only), zero padding at
the first and last frame, and a bias; it acts on the patch tokens reshaped to [B, w, T, h, w];
the class token passes through unchanged. The conv weight and bias start at 0 (W_down and W_up
keep PyTorch's default Linear init, with zero biases), so the adapter starts as the identity.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class STAdapterModule(nn.Module):
    """Eq. 15 on the tokens of videos [B, T, 1 + h*w, D] (class token first) -> same shape.

    Args:
        dim: token width D. width: bottleneck width D' (the reference uses 384 = D/2 on ViT-B).
        grid: (h, w) of the patch grid. kernel: the depth-wise conv kernel (T, h, w).
    Parameters: 2 D D' + D + D' (linears) + D' (prod(kernel) + 1) (conv); 592,512 at D = 768, D' = 384.
    """

    def __init__(self, dim: int, width: int, grid: Sequence[int], kernel: Sequence[int] = (3, 1, 1)) -> None:
        super().__init__()
        self.grid = (int(grid[0]), int(grid[1]))
        self.down = nn.Linear(dim, width)
        self.conv = nn.Conv3d(width, width, tuple(kernel), padding=tuple(k // 2 for k in kernel), groups=width)
        self.up = nn.Linear(width, dim)
        for layer in (self.conv, self.down, self.up):
            nn.init.zeros_(layer.bias)
        nn.init.zeros_(self.conv.weight)

    def forward(self, x: Tensor) -> Tensor:
        cls, patches = x[:, :, :1], x[:, :, 1:]
        z = self.down(patches).permute(0, 3, 1, 2).unflatten(-1, self.grid)  # [B, D', T, h, w]
        z = self.conv(z).flatten(-2).permute(0, 2, 3, 1)  # [B, T, h*w, D']
        return torch.cat([cls, patches + self.up(z)], dim=2)
