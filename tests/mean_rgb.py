"""The smallest working method: mean RGB per frame, linearly projected.

Shared by the tests that need a third-party-style method (the registry's fake plugin package, the
contract checks' broken variants), so that its definition exists once.
"""

from __future__ import annotations

from torch import nn

from fsar_bench import Method


class MeanRGB(Method):
    """Mean RGB per frame, projected: passes every contract check."""

    presets = {"tiny": {"frames": 4, "image_size": 16}, "full": {}}
    train_presets = {"tiny": {"steps": 2, "lr": 1e-2}}

    def __init__(self, *, frames: int = 8, image_size: int = 224, width: int = 8) -> None:
        super().__init__(frames=frames, image_size=image_size)
        self.proj = nn.Linear(3, width)
        self.feature_dim = width

    def embed(self, clips, texts=None):
        return self.proj(clips.mean(dim=(-1, -2)))
