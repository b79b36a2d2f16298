"""Self Motion-Guided Attention, S-MGA (DMGAL Sec. III-B1): motion-guided self-attention within a
video (Eqs. 4-7) followed by the temporal MLP-mixer (Eqs. 8-9). Per video, so it can run in
`embed`: nothing here looks at other videos (BatchNorm in eval mode uses its running statistics).

Eqs. 4-7 for frame i, with M_i^{->} = M(F_i, F_{i+1}) and M_i^{<-} the backward map
(motion.py), as tokens [HW, c]:
  S^B_i = M_i^{->} M_i^{->T} / sqrt(c),  S^F_i = M_i^{<-} M_i^{<-T} / sqrt(c),   c = D / r1
  S_i   = softmax(S^B_i + S^F_i)   (paper)  or  (softmax(S^B_i) + softmax(S^F_i)) / 2  (release)
  F_i  <- F_i + lambda * S_i Phi_3(F)_i,     lambda learnable, 0 at the start (identity).
The boundary frames are handled in motion.py (the last frame's forward motion is zero).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from fsar_bench.matchers.trx import sinusoidal_encoding
from fsar_methods.dmgal.motion import (MGAConfig, MotionExtractor, Phi3, from_tokens, fuse_attention, init_mga_,
                                      to_tokens)


class SelfMGA(nn.Module):
    """Eqs. 4-7 on a video's feature maps [N, T, D, H, W] -> same shape.

    Args:
        dim: channels D. reduction: r1. config: variant switches (motion.MGAConfig).
    Parameters at D = 2048, r1 = 8 (release variant): 9D + Dc + 19c^2 + 15c + 1 = 1,791,745.
    """

    def __init__(self, dim: int, reduction: int, config: MGAConfig) -> None:
        super().__init__()
        self.config = config
        self.motion = MotionExtractor(dim, reduction, config)
        self.phi3 = Phi3(dim, config.phi3)
        self.gate = nn.Parameter(torch.zeros(1))  # lambda of Eq. 7
        self.drop = nn.Dropout(config.dropout)
        init_mga_(self)

    def _encode(self, tokens: Tensor) -> Tensor:
        """The release adds a sinusoidal patch-position encoding (x 0.1) and dropout to the motion tokens."""
        if not self.config.token_norm:
            return tokens
        pe = sinusoidal_encoding(tokens.shape[-2], tokens.shape[-1]).to(tokens) * 0.1
        return self.drop(tokens + pe)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        m_fwd, m_bwd = (self._encode(to_tokens(m)) for m in self.motion(x))  # [N, T, HW, c]
        scale = 1.0 / math.sqrt(self.motion.channels)
        attn = fuse_attention(m_fwd @ m_fwd.transpose(-1, -2) * scale, m_bwd @ m_bwd.transpose(-1, -2) * scale,
                              self.config.fusion, self.drop)  # [N, T, HW, HW]
        values = to_tokens(self.phi3(x))  # [N, T, HW, D]
        return x + self.gate * from_tokens(attn @ values, h, w)


class TemporalMixer(nn.Module):
    """Eqs. 8-9: a residual MLP over time (W1, W2 in R^{LxL}) for every patch and channel, then a
    residual MLP over channels (W3, W4 in R^{DxD}) for every frame and patch; ReLU, with biases and
    no LayerNorm (as the release). Patches are never mixed. [N, L, D, H, W] -> same shape.
    Parameters: 2 (L^2 + L) + 2 (D^2 + D) = 8,392,848 at D = 2048, L = 8.
    """

    def __init__(self, frames: int, dim: int) -> None:
        super().__init__()
        self.time = nn.Sequential(nn.Linear(frames, frames), nn.ReLU(), nn.Linear(frames, frames))
        self.channel = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.frames = frames

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] != self.frames:
            raise ValueError(f"the temporal mixer was built for {self.frames} frames, got {x.shape[1]}")
        g = x.permute(0, 2, 3, 4, 1)  # [N, D, H, W, L]
        g = g + self.time(g)  # Eq. 8
        h = g.permute(0, 4, 2, 3, 1)  # [N, L, H, W, D]
        h = h + self.channel(h)  # Eq. 9
        return h.permute(0, 1, 4, 2, 3)


class SMGA(nn.Module):
    """The S-MGA module: SelfMGA (Eqs. 4-7), then the TemporalMixer (Eqs. 8-9) unless `mixer=False`."""

    def __init__(self, dim: int, frames: int, reduction: int, config: MGAConfig, mixer: bool = True) -> None:
        super().__init__()
        self.attention = SelfMGA(dim, reduction, config)
        self.mixer = TemporalMixer(frames, dim) if mixer else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.attention(x)
        return self.mixer(x) if self.mixer is not None else x
