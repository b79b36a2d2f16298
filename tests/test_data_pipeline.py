"""Frame sampling, transforms and training episodes."""

from __future__ import annotations

import random

import numpy as np
import torch

from fsar_bench.config import load_config
from fsar_bench.data import sampling
from fsar_bench.data.cards import get_card
from fsar_bench.data.source import VideoSource
from fsar_bench.engine.batches import TrainEpisodes
from fsar_bench.data.transforms import ClipTransform


def test_test_indices_are_segment_centres():
    assert sampling.test_indices(16, 8) == [1, 3, 5, 7, 9, 11, 13, 15]
    assert sampling.test_indices(80, 8) == [5, 15, 25, 35, 45, 55, 65, 75]
    assert sampling.test_indices(4, 8) == [0, 0, 1, 1, 2, 2, 3, 3]  # short videos repeat frames


def test_train_indices_one_per_segment():
    rng = random.Random(0)
    for _ in range(50):
        idx = sampling.train_indices(40, 8, rng)
        assert all(5 * i <= j < 5 * (i + 1) for i, j in enumerate(idx))


def test_transform_shapes_and_flip_rule():
    frames = np.random.default_rng(0).integers(0, 255, (8, 60, 80, 3), dtype=np.uint8)
    t = ClipTransform.for_size(32, (0.5,) * 3, (0.25,) * 3, flip=False, jitter=0.3)
    out = t(frames, train=False)
    assert out.shape == (8, 3, 32, 32)
    centre = t(frames, train=False)
    assert torch.equal(out, centre)  # test transform is deterministic
    # with flips disallowed (temporal datasets), training never mirrors: the crop of an image whose
    # left half is dark and right half bright keeps that order
    img = np.zeros((8, 64, 64, 3), np.uint8)
    img[:, :, 32:] = 255
    t2 = ClipTransform.for_size(32, (0.0,) * 3, (1.0,) * 3, flip=False)
    for seed in range(20):
        x = t2(img, train=True, rng=random.Random(seed))
        assert x[0, 0, :, 0].mean() <= x[0, 0, :, -1].mean()


def test_train_episodes_deterministic(workdir):
    card = get_card("toy-motion")
    src = VideoSource.open(card, load_config())
    t = ClipTransform.for_size(32, (0.5,) * 3, (0.25,) * 3, flip=card.flip, jitter=0.2)
    a = TrainEpisodes(src, "train", 5, 1, 2, 10, "seed", 8, t)
    b = TrainEpisodes(src, "train", 5, 1, 2, 10, "seed", 8, t)
    x, y = a[3], b[3]
    assert torch.equal(x.support, y.support) and torch.equal(x.query, y.query)
    assert x.support.shape == (5, 8, 3, 32, 32) and x.query.shape == (10, 8, 3, 32, 32)
    assert x.support_labels.tolist() == [0, 1, 2, 3, 4]
    assert set(x.class_names) <= set(x.split_class_names)


def _coordinate_clip(frames: int, height: int, width: int) -> np.ndarray:
    """uint8 [T, H, W, 3] whose pixels name themselves: R = row, G = column, B = 10 x frame index."""
    rows = np.broadcast_to(np.arange(height)[:, None], (height, width))
    cols = np.broadcast_to(np.arange(width)[None, :], (height, width))
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        out[t, ..., 0], out[t, ..., 1], out[t, ..., 2] = rows, cols, 10 * t
    return out


def _pixels(x: torch.Tensor) -> np.ndarray:
    """Back to integer pixel values (mean 0, std 1: the transform only divides by 255)."""
    return np.rint(x.numpy() * 255).astype(int)


def test_test_crop_is_the_centre_window():
    """size 56 -> short side round(56 * 8 / 7) = 64: a 64 x 96 clip is not resized, and the centre
    56 x 56 window starts at row (64 - 56) / 2 = 4 and column (96 - 56) / 2 = 20."""
    t = ClipTransform.for_size(56, (0.0,) * 3, (1.0,) * 3, flip=True, jitter=0.5)
    assert t.resize == 64
    out = _pixels(t(_coordinate_clip(3, 64, 96), train=False))
    assert out.shape == (3, 3, 56, 56)
    for f in range(3):
        assert (out[f, 0] == np.arange(4, 60)[:, None]).all()  # rows 4..59
        assert (out[f, 1] == np.arange(20, 76)[None, :]).all()  # columns 20..75, not mirrored
        assert (out[f, 2] == 10 * f).all()  # frames in order, no jitter at test time


def test_train_crop_is_one_window_shared_by_all_frames():
    """Training: a random 56 x 56 window inside the 64 x 64 frame (offsets 0..8), the same for every
    frame of the clip; mirrored only when flips are allowed."""
    clip = _coordinate_clip(4, 64, 64)
    seen, flipped = set(), 0
    for flip in (False, True):
        t = ClipTransform.for_size(56, (0.0,) * 3, (1.0,) * 3, flip=flip)
        for seed in range(30):
            out = _pixels(t(clip, train=True, rng=random.Random(seed)))
            top, left = out[0, 0, 0, 0], out[0, 1, 0, :].min()
            assert 0 <= top <= 8 and 0 <= left <= 8
            assert (out[:, 0] == np.arange(top, top + 56)[:, None]).all()  # every frame, same rows
            cols = np.arange(left, left + 56)
            mirrored = bool((out[:, 1] == cols[::-1][None, :]).all())
            assert mirrored or (out[:, 1] == cols[None, :]).all()  # same columns, maybe mirrored
            assert flip or not mirrored
            flipped += mirrored
            seen.add((int(top), int(left)))
    # the window moves along both axes, independently
    assert len({t for t, _ in seen}) > 3 and len({c for _, c in seen}) > 3 and any(t != c for t, c in seen)
    assert 0 < flipped < 30  # with flips allowed, some clips are mirrored, not all
