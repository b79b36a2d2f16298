"""Toy datasets: deterministic bytes, the class design, and real video files read by the real loader."""

from __future__ import annotations

import filecmp

import numpy as np

from fsar_bench.data import toy
from fsar_bench.data.cards import get_card
from fsar_bench.data.video import read_frames


def _tree(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_prepare_twice_gives_byte_identical_trees(toy_data_root, background_cli):
    """The session's toy-motion and a second `fsar-bench data prepare toy-motion` (its own process,
    run in the background while other tests run: conftest.py) are the same files, byte for byte."""
    assert background_cli.code == 0, background_cli.err
    a, b = toy_data_root / "toy-motion", background_cli.folder / "B"
    assert _tree(a) == _tree(b)
    match, mismatch, errors = filecmp.cmpfiles(a, b, _tree(a), shallow=False)
    assert not mismatch and not errors and len(match) == len(_tree(a))
    assert (a / toy.MANIFEST).read_bytes() == (b / toy.MANIFEST).read_bytes()


def test_committed_split_lists_match_generator():
    for name in ("toy-motion", "toy-appearance"):
        card = get_card(name)
        for split, lines in toy.split_lists(card).items():
            assert [f"{c}/{v}" for c, v in card.split(split).entries] == lines


def test_motion_classes_reverse_within_split():
    card = get_card("toy-motion")
    for split in ("train", "val", "test"):
        classes = set(card.split(split).by_class)
        assert len(classes) == {"train": 64, "val": 12, "test": 24}[split]
        for cls in classes:
            a, _, b = cls.partition("_then_")
            assert f"{toy.REV[b]}_then_{toy.REV[a]}" in classes  # the time reversal is another class here


def test_videos_decode_and_masks_match(toy_data_root):
    card = get_card("toy-motion")
    cls, vid = card.split("test").entries[0]
    frames, idx = read_frames(toy_data_root / card.name / cls / f"{vid}.mp4", lambda n: list(range(n)))
    assert frames.shape == (16, 64, 64, 3) and idx == list(range(16))
    masks = toy.read_mask_strip(toy_data_root / card.name / "masks" / cls / f"{vid}.png", 16)
    assert masks.shape == (16, 64, 64) and 0.01 < masks.mean() < 0.5


def test_versions_are_per_generator_kind(toy_data_root):
    assert toy.generator_version(get_card("toy-appearance")) == toy.TOY_VERSIONS["appearance"] == "4"  # bytes frozen
    assert toy.generator_version(get_card("toy-motion")) == toy.TOY_VERSIONS["motion"] == "4"
    for name in ("toy-motion", "toy-appearance"):
        card = get_card(name)
        assert (toy_data_root / name / "TOY_VERSION").read_text() == toy.generator_version(card) + "\n"
        assert toy.is_prepared(toy_data_root / name, card)
    # the two kinds' videos differ, so do their data versions (generator version + manifest digest)
    assert toy.data_version(get_card("toy-motion")) != toy.data_version(get_card("toy-appearance"))


def test_data_version_is_the_manifest_digest(tmp_path):
    """Differing bytes give a differing data_version, and the leaderboard tells why a run is apart."""
    card = get_card("toy-motion")
    (tmp_path / toy.MANIFEST).write_text("a manifest\n")
    seen = toy.data_version(card, tmp_path)
    assert seen.startswith(f"{toy.generator_version(card)}+sha256:") and seen != toy.data_version(card)
    assert toy.stale_reason(card, toy.data_version(card)) is None
    assert "is not the canonical bytes" in toy.stale_reason(card, seen)
    assert toy.stale_reason(card, "3").startswith("toy data generator version 3 ")  # runs of v3 recorded no digest


def test_motion_time_reversal_is_exact_and_appearance_carries_no_label():
    """With the same random draws, the reversed video of (a, b) is, pixel for pixel, the video of
    (rev b, rev a): an order-blind method cannot tell the two classes apart. And the draws do not
    depend on the class: outside the object the frames of any two classes are the same pixels."""
    card = get_card("toy-motion")
    classes = sorted(card.split("test").by_class)
    for k, cls in enumerate(classes[:6]):
        a, _, b = cls.partition("_then_")
        video, masks = toy.render("motion", cls, np.random.default_rng(k), 64, 16)
        rev, rev_masks = toy.render("motion", f"{toy.REV[b]}_then_{toy.REV[a]}", np.random.default_rng(k), 64, 16)
        assert np.array_equal(video[::-1], rev) and np.array_equal(masks[::-1], rev_masks)
        other, other_masks = toy.render("motion", classes[-1 - k], np.random.default_rng(k), 64, 16)
        outside = ~(masks | other_masks)
        assert np.array_equal(video[outside], other[outside])
        assert np.array_equal(np.unique(video[masks], axis=0), np.unique(other[other_masks], axis=0))
        assert len(np.unique(video[masks], axis=0)) == 1  # one grey object
        assert not np.array_equal(video, other)  # ... which moves differently


def test_motion_path_is_centred_and_reversal_symmetric():
    for a in toy.REV:
        for b in toy.REV:
            pos, logr = toy.motion_path((a, b), 16, 20.0, 0.6)
            rpos, rlogr = toy.motion_path((toy.REV[b], toy.REV[a]), 16, 20.0, 0.6)
            assert np.allclose(pos[::-1], rpos) and np.allclose(logr[::-1], rlogr)
            assert np.allclose(pos.min(axis=0), -pos.max(axis=0))
    pos, _ = toy.motion_path(("right", "up"), 16, 20.0, 0.6)
    assert np.allclose(pos[0], [-10, 10]) and np.allclose(pos[7], [10, 10], atol=1.5) and np.allclose(pos[-1], [10, -10])
    _, logr = toy.motion_path(("grow", "still"), 16, 20.0, 0.6)
    assert np.allclose(logr[[0, -1]], [-0.3, 0.3])
