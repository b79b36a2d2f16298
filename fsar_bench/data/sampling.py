"""TSN frame sampling: T equal segments, one frame each.

Test (part of the frozen protocol): the centre of segment i of a video with n frames is
index (2i + 1) * n // (2T), integer arithmetic, so test frames depend only on n and T.
Training: a uniformly random frame of each segment, drawn from the caller's `random.Random`.
Segment i spans [i * n // T, (i + 1) * n // T); when n < T segments are empty and frames repeat.
"""

from __future__ import annotations

import random


def test_indices(n: int, t: int) -> list[int]:
    """Segment centres, the deterministic test-time frames."""
    if n <= 0 or t <= 0:
        raise ValueError(f"need n > 0 frames and t > 0 segments, got n={n}, t={t}")
    return [(2 * i + 1) * n // (2 * t) for i in range(t)]


def train_indices(n: int, t: int, rng: random.Random) -> list[int]:
    """One uniformly random frame per segment."""
    if n <= 0 or t <= 0:
        raise ValueError(f"need n > 0 frames and t > 0 segments, got n={n}, t={t}")
    out = []
    for i in range(t):
        lo, hi = i * n // t, (i + 1) * n // t
        out.append(rng.randrange(lo, hi) if hi > lo else min(lo, n - 1))
    return out
