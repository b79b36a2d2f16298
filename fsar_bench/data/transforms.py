"""Clip transforms: resize the short side, crop, flip, colour jitter, normalise.

Training draws one crop, one flip and one jitter per clip (the same for all its frames, so
motion is not distorted); horizontal flips are off on temporal datasets, where left/right is
part of the label. Test: centre crop only. `ClipTransform.key` identifies the deterministic test
transform in the embedding cache.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class ClipTransform:
    size: int  # crop side
    resize: int  # short side before cropping
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    flip: bool = True  # allowed by the dataset (training only)
    jitter: float = 0.0  # colour jitter strength (training only); 0 disables

    @classmethod
    def for_size(cls, size: int, mean, std, flip: bool = True, jitter: float = 0.0) -> ClipTransform:
        """The usual 256 -> 224 ratio: resize the short side to round(size * 8 / 7)."""
        return cls(size, int(round(size * 8 / 7)), tuple(mean), tuple(std), flip, jitter)

    @property
    def key(self) -> str:
        return f"short{self.resize}-centre{self.size}-mean{self.mean}-std{self.std}"

    def __call__(self, frames: np.ndarray, train: bool = False, rng: random.Random | None = None) -> Tensor:
        """uint8 [T, H, W, 3] -> float [T, 3, size, size], normalised."""
        return self.apply(frames, None, train, rng)[0]

    def apply(self, frames: np.ndarray, masks: np.ndarray | None, train: bool = False,
              rng: random.Random | None = None) -> tuple[Tensor, Tensor | None]:
        """Transform a clip and (optionally) its per-frame masks [T, H, W] with the same geometry."""
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
        m = torch.from_numpy(np.ascontiguousarray(masks, dtype=np.float32)).unsqueeze(1) if masks is not None else None
        h, w = x.shape[-2:]
        scale = self.resize / min(h, w)
        nh, nw = max(self.size, round(h * scale)), max(self.size, round(w * scale))
        if (nh, nw) != (h, w):
            x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=scale < 1)
        if m is not None and m.shape[-2:] != (nh, nw):
            m = F.interpolate(m, size=(nh, nw), mode="bilinear", align_corners=False)
        if train:
            rng = rng or random.Random()
            top, left = rng.randint(0, nh - self.size), rng.randint(0, nw - self.size)
        else:
            top, left = (nh - self.size) // 2, (nw - self.size) // 2
        x = x[..., top:top + self.size, left:left + self.size]
        if m is not None:
            m = m[..., top:top + self.size, left:left + self.size]
        if train and self.flip and rng.random() < 0.5:
            x = x.flip(-1)
            m = m.flip(-1) if m is not None else None
        if train and self.jitter > 0:
            x = _jitter(x, self.jitter, rng)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (x - mean) / std, (m.squeeze(1) if m is not None else None)


def _jitter(x: Tensor, strength: float, rng: random.Random) -> Tensor:
    """Brightness, contrast and saturation factors in [1 - s, 1 + s], shared by all frames."""
    b, c, s = (1 + strength * (2 * rng.random() - 1) for _ in range(3))
    x = x * b
    mean = x.mean(dim=(-3, -2, -1), keepdim=True)
    x = (x - mean) * c + mean
    grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = (x - grey) * s + grey
    return x.clamp_(0.0, 1.0)
