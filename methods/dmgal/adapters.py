"""Smga-Adapter and Cmga-Adapter (DMGAL Sec. III-C2, Eqs. 16-17), the MGA modules as bottleneck
adapters of a frozen ViT:

    Smga-Adapter(X) = X + S-MGA(X W_down) W_up      (Eq. 16; per video)
    Cmga-Adapter(X) = X + C-MGA(X W_down) W_up      (Eq. 17; per task: query and support together)

The paper leaves the bottleneck width, the init and the class token open (dmgal.md section 7).
Our choices, after the closest adapter conventions (adapters.md sections 1 and 3): W_down, W_up
are linear layers with bias, no activation (Eqs. 15-17 have none), W_up starts at zero (so each
adapter starts as the identity), the patch tokens are reshaped to their h x w grid for the MGA
convolutions, and the class token passes through unchanged. r1 / r2 act inside the MGA modules
on the bottleneck width (192 / 4 = 48 motion channels on ViT-B/16 at width 0.25).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from fsar_methods.dmgal.cmga import CrossMGA
from fsar_methods.dmgal.motion import MGAConfig, from_tokens, to_tokens
from fsar_methods.dmgal.smga import SMGA


class _Bottleneck(nn.Module):
    """W_down / W_up around a map module, on the patch tokens of [..., T, 1 + h*w, D]."""

    def __init__(self, dim: int, width: int, grid: Sequence[int]) -> None:
        super().__init__()
        self.grid = (int(grid[0]), int(grid[1]))
        self.down = nn.Linear(dim, width)
        self.up = nn.Linear(width, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def to_map(self, x: Tensor) -> Tensor:
        """Tokens [..., T, 1 + h*w, D] -> X W_down on the patches as maps [..., T, D', h, w]."""
        return from_tokens(self.down(x[..., 1:, :]), *self.grid)

    def add(self, x: Tensor, maps: Tensor) -> Tensor:
        """X + maps W_up on the patches (class token unchanged)."""
        return torch.cat([x[..., :1, :], x[..., 1:, :] + self.up(to_tokens(maps))], dim=-2)


class SmgaAdapter(_Bottleneck):
    """Eq. 16 on video tokens [B, T, 1 + h*w, D] -> same shape.

    Args: dim D, width D' of the bottleneck, frames T (for the temporal mixer), grid (h, w),
    reduction r1, config (motion.MGAConfig), mixer (include Eqs. 8-9 inside S-MGA).
    """

    def __init__(self, dim: int, width: int, frames: int, grid: Sequence[int], reduction: int, config: MGAConfig,
                 mixer: bool = True) -> None:
        super().__init__(dim, width, grid)
        self.smga = SMGA(width, frames, reduction, config, mixer)

    def forward(self, x: Tensor) -> Tensor:
        return self.add(x, self.smga(self.to_map(x)))


class CmgaAdapter(_Bottleneck):
    """Eq. 17 on a task: query tokens [E, Q, T, 1 + h*w, D], support [E, S, T, 1 + h*w, D] -> both.

    Args: dim D, width D', grid (h, w), reduction r2, config, attention ('frame_wise' | 'frame_all').
    """

    def __init__(self, dim: int, width: int, grid: Sequence[int], reduction: int, config: MGAConfig,
                 attention: str = "frame_wise") -> None:
        super().__init__(dim, width, grid)
        self.cmga = CrossMGA(width, reduction, config, attention)

    def forward(self, query: Tensor, support: Tensor) -> tuple[Tensor, Tensor]:
        q_maps, s_maps = self.cmga(self.to_map(query), self.to_map(support))
        return self.add(query, q_maps), self.add(support, s_maps)
