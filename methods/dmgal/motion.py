"""Bidirectional multi-scale motion extraction shared by S-MGA and C-MGA (DMGAL Sec. III-B1, Eqs. 1-3),
the variant switches, and the pieces both attention modules use (Phi_3, token reshaping, fusion).

Video tensors are [N, T, C, H, W] throughout (N videos of T frames).

Eq. 1-3, as built here (the release's layer types, which Table VII's parameter counts pin down;
/work/shared/notes/dmgal.md sections 2 and 4):
  B_i      = BN(Conv1x1_{D -> D/r}(F_i))                         channel compression by r first
  C_fwd(i) = s * (B_i - Phi_2(B_{i+1}))                          Eq. 1, Phi_2 = depth-wise 3x3
  C_bwd(i) = s * (B_i - Phi_2(B_{i-1}))   ('previous', release)  or
             s * (B_{i+1} - Phi_2(B_i))   ('next', Eq. 3 read literally: the same pair, reversed)
  M        = Conv1x1((C + Up(BN(Conv3x3(AvgPool2(C)))) + BN(Conv3x3(C))) / 3)     Eqs. 2-3, N = 3
with s = -1 in the release (it computes Phi_2(B_{i+1}) - B_i) and s = +1 for the paper's sign.

Boundary frames (the last frame has no F_{i+1}): a direction with no neighbour pair gets a zero
difference map, inserted BEFORE the multi-scale block, as in the release. With 'previous' the
last frame keeps its backward motion (from F_{L-1}) and the first frame gets zero backward
motion; with 'next' the last frame has zero motion in both directions. After the BN shifts a
zero map becomes spatially constant, so that frame's attention row is (near) uniform: its
enhancement term is then close to the spatial mean of Phi_3(F).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
from torch import Tensor, nn

FUSIONS = ("mean_softmax", "sum_logits")
PHI3_KINDS = ("dw3x3", "dw3x1x1")
UPSAMPLES = ("nearest", "bilinear")
SIGNS = ("release", "paper")
BACKWARDS = ("previous", "next")


@dataclass(frozen=True)
class MGAConfig:
    """Where the paper and the release differ (dmgal.md section 5), one switch each.

    fusion: 'mean_softmax' (release: 0.5 softmax(S^B) + 0.5 softmax(S^F)) or 'sum_logits'
        (Eqs. 6 and 12: one softmax of S^B + S^F).
    phi3: 'dw3x3' (release: 2-D depth-wise 3x3 per frame; matches Table VII) or 'dw3x1x1'
        (the paper's 3-D depth-wise 3x1x1 over time).
    upsample: 'nearest' (release) or 'bilinear' (paper) for the pooled multi-scale branch.
    diff_sign: 'release' (Phi_2(B_nb) - B_i) or 'paper' (B_i - Phi_2(B_nb), Eq. 1).
    backward: 'previous' (release) or 'next' (Eq. 3 literally); see the module docstring.
    token_norm: release extras on the motion tokens: sinusoidal patch-position encoding x 0.1 in
        S-MGA, LayerNorm in C-MGA. False: neither (the paper has none).
    dropout: dropout on the attention maps (and on S-MGA's encoded tokens); 0.1 in the release.
    multi_scale: True: Eq. 2 with its three branches (release, paper). False: one scale, M =
        Conv1x1(C) (Eq. 2 with N = 1); our reading of the "simplified" MGA adapters of DMGAL-Adapter
        (dmgal_adapter.py), not a release or paper setting of DMGAL-FT.
    """

    fusion: str = "mean_softmax"
    phi3: str = "dw3x3"
    upsample: str = "nearest"
    diff_sign: str = "release"
    backward: str = "previous"
    token_norm: bool = True
    dropout: float = 0.1
    multi_scale: bool = True

    def __post_init__(self) -> None:
        for name, allowed in (("fusion", FUSIONS), ("phi3", PHI3_KINDS), ("upsample", UPSAMPLES),
                              ("diff_sign", SIGNS), ("backward", BACKWARDS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"MGA option {name} must be one of {allowed}, not {getattr(self, name)!r}")


VARIANTS = {
    "release": MGAConfig(),
    "paper": MGAConfig(fusion="sum_logits", phi3="dw3x1x1", upsample="bilinear", diff_sign="paper",
                       backward="next", token_norm=False, dropout=0.0),
}


def mga_config(variant: str = "release", options: Mapping[str, Any] | None = None) -> MGAConfig:
    """A named variant ('release' or 'paper') with individual fields overridden by `options`."""
    if variant not in VARIANTS:
        raise ValueError(f"mga_variant must be one of {sorted(VARIANTS)}, not {variant!r}")
    options = dict(options or {})
    unknown = set(options) - {f.name for f in fields(MGAConfig)}
    if unknown:
        raise ValueError(f"unknown MGA options {sorted(unknown)}; known: {[f.name for f in fields(MGAConfig)]}")
    return replace(VARIANTS[variant], **options)


def init_mga_(module: nn.Module) -> None:
    """The release's init (DM L87-93): convs ~ N(0, sqrt(2 / (kernel size * out channels))), BN = (1, 0)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            fan_out = math.prod(m.kernel_size) * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def to_tokens(x: Tensor) -> Tensor:
    """[..., C, H, W] -> [..., H*W, C]."""
    return x.flatten(-2).transpose(-1, -2)


def from_tokens(x: Tensor, height: int, width: int) -> Tensor:
    """[..., H*W, C] -> [..., C, H, W]."""
    return x.transpose(-1, -2).unflatten(-1, (height, width))


def fuse_attention(logits_b: Tensor, logits_f: Tensor, fusion: str, dropout: nn.Module) -> Tensor:
    """Attention weights from the two directions' score matrices (Eqs. 6 and 12 or the release's mean)."""
    if fusion == "sum_logits":
        return dropout(torch.softmax(logits_b + logits_f, dim=-1))
    return 0.5 * dropout(torch.softmax(logits_b, dim=-1)) + 0.5 * dropout(torch.softmax(logits_f, dim=-1))


class Phi3(nn.Module):
    """Phi_3 of Eqs. 7, 13 and 14: a depth-wise convolution of a video's full-width features.

    'dw3x3': 2-D 3x3 per frame (release, 9D parameters); 'dw3x1x1': 3-D 3x1x1 over time (paper, 3D).
    Both have no bias and keep the shape [N, T, D, H, W].
    """

    def __init__(self, dim: int, kind: str = "dw3x3") -> None:
        super().__init__()
        self.temporal = kind == "dw3x1x1"
        if self.temporal:
            self.conv = nn.Conv3d(dim, dim, (3, 1, 1), padding=(1, 0, 0), groups=dim, bias=False)
        else:
            self.conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.temporal:
            return self.conv(x.transpose(1, 2)).transpose(1, 2)
        return self.conv(x.flatten(0, 1)).view_as(x)


class MotionExtractor(nn.Module):
    """Eqs. 1-3: forward and backward multi-scale motion maps of each frame.

    Args:
        dim: channels D of the input features.
        reduction: compression factor r (r1 in S-MGA, r2 in C-MGA); motion channels c = D // r.
        config: the variant switches.
    Input [N, T, D, H, W] (H, W >= 2 for the pooled branch); output two [N, T, c, H, W] maps:
    M(F_i, F_{i+1}) ("forward", Eq. 2) and the backward map (Eq. 3), in that order.
    """

    def __init__(self, dim: int, reduction: int, config: MGAConfig) -> None:
        super().__init__()
        c = max(1, dim // int(reduction))
        self.channels = c
        self.config = config
        self.compress = nn.Sequential(nn.Conv2d(dim, c, 1, bias=False), nn.BatchNorm2d(c))
        self.phi2 = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)  # spatial smoothing, Eq. 1
        # The three CNN_j of Eq. 2: identity; 3x3 conv; avg-pool -> 3x3 conv -> upsample (identity only
        # without multi_scale).
        if config.multi_scale:
            self.full_scale = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
            self.pooled_scale = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c, c, 3, padding=1, bias=False),
                                              nn.BatchNorm2d(c))
        self.aggregate = nn.Conv2d(c, c, 1, bias=False)  # "Conv" of Eq. 2 (a 1x1 channel mix)

    def differences(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Eq. 1 in both directions, zero-padded at the boundary frames: two [N, T, c, H, W]."""
        n, t, _, h, w = x.shape
        b = self.compress(x.flatten(0, 1))
        smooth = self.phi2(b).view(n, t, -1, h, w)
        b = b.view(n, t, -1, h, w)
        sign = 1.0 if self.config.diff_sign == "paper" else -1.0
        zero = torch.zeros_like(b[:, :1])
        forward = torch.cat([sign * (b[:, :-1] - smooth[:, 1:]), zero], dim=1)  # C(F_i, F_{i+1})
        if self.config.backward == "previous":
            backward = torch.cat([zero, sign * (b[:, 1:] - smooth[:, :-1])], dim=1)  # C(F_i, F_{i-1})
        else:
            backward = torch.cat([sign * (b[:, 1:] - smooth[:, :-1]), zero], dim=1)  # C(F_{i+1}, F_i) at i
        return forward, backward

    def multi_scale(self, d: Tensor) -> Tensor:
        """Eq. 2 on difference maps [N, T, c, H, W]."""
        n, t, c, h, w = d.shape
        if not self.config.multi_scale:
            return self.aggregate(d.flatten(0, 1)).view(n, t, c, h, w)
        if min(h, w) < 2:
            raise ValueError(f"MGA needs spatial maps of at least 2x2, got {h}x{w} "
                             "(lower the backbone's output stride)")
        flat = d.flatten(0, 1)
        pooled = self.pooled_scale(flat)
        mode = self.config.upsample
        pooled = nn.functional.interpolate(pooled, size=(h, w), mode=mode,
                                           **({"align_corners": False} if mode == "bilinear" else {}))
        out = self.aggregate((flat + pooled + self.full_scale(flat)) / 3.0)
        return out.view(n, t, c, h, w)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        forward, backward = self.differences(x)
        return self.multi_scale(forward), self.multi_scale(backward)
