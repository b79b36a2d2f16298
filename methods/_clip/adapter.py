"""The bottleneck Adapter of MA-FSAR Fig. 3(a) (Houlsby et al. 2019; AIM's form).

    Adapter(x) = x + FC_up(GELU(FC_down(x)))      (with skip connection)
    Adapter(x) =     FC_up(GELU(FC_down(x)))      (without: GTA's adapter, Eq. 4; the joint adapter, Eq. 8)

FC_down maps D -> ratio * D (ratio 0.25, Sec. 4.1.2) and FC_up back to D. Initialisation follows
AIM (notes/adapters.md Sec. 2): FC_down truncated normal (std 0.02, bias 0) and FC_up all zeros, so
every adapter branch starts at zero (with skip: the identity).
"""

from __future__ import annotations

from torch import Tensor, nn


class Adapter(nn.Module):
    def __init__(self, dim: int, ratio: float = 0.25, skip: bool = True) -> None:
        super().__init__()
        hidden = max(1, int(dim * ratio))
        self.fc_down = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc_up = nn.Linear(hidden, dim)
        self.skip = bool(skip)
        nn.init.trunc_normal_(self.fc_down.weight, std=0.02)
        nn.init.zeros_(self.fc_down.bias)
        nn.init.zeros_(self.fc_up.weight)
        nn.init.zeros_(self.fc_up.bias)

    def forward(self, x: Tensor) -> Tensor:
        delta = self.fc_up(self.act(self.fc_down(x)))
        return x + delta if self.skip else delta

    def extra_repr(self) -> str:
        return f"skip={self.skip}"
