"""Frame sampling, transforms and training episodes."""

from __future__ import annotations

import random

import numpy as np
import torch

from fsar_bench.config import load_config
from fsar_bench.data import sampling
from fsar_bench.data.cards import get_card
from fsar_bench.data.source import TrainEpisodes, VideoSource
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
