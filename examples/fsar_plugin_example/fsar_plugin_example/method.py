"""ExampleMotion: per-frame appearance features from a small CNN, plus their frame-to-frame changes.

Written from the plugin section of fsar-bench's README only: a `fsar_bench.Method` subclass with
keyword-only hyperparameters, `presets` / `train_presets`, a `default_matcher`, and an `embed` that
maps each video on its own ([B, T, 3, H, W] -> [B, T, D]), so the evaluator can cache it.
"""

from __future__ import annotations

import torch
from torch import nn

from fsar_bench import Method


class ExampleMotion(Method):
    presets = {"full": {"width": 64, "frames": 8, "image_size": 224},
               "tiny": {"width": 16, "frames": 8, "image_size": 32}}
    train_presets = {"full": {"steps": 2_000, "lr": 1e-3, "train_query": 5},
                     "tiny": {"steps": 50, "lr": 1e-3, "train_query": 1}}
    default_matcher = "otam"                      # any registered matcher (`fsar-bench list matchers`)

    def __init__(self, *, width: int = 64, frames: int = 8, image_size: int = 224) -> None:
        super().__init__(frames=frames, image_size=image_size)
        self.encoder = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1), nn.GroupNorm(4, width), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.GroupNorm(4, width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.motion = nn.Linear(width, width)
        self.feature_dim = 2 * width
        self.weights_source = "random-init"       # no pretrained weights for this example

    def embed(self, clips, texts=None):           # clips [B, T, 3, H, W] -> [B, T, D]
        b, t = clips.shape[:2]
        frames = self.encoder(clips.flatten(0, 1)).view(b, t, -1)
        change = torch.diff(frames, dim=1, prepend=frames[:, :1])    # 0 for the first frame
        return torch.cat([frames, self.motion(change)], dim=-1)
