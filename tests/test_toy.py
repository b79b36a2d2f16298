"""Toy datasets: deterministic bytes, the class design, and real video files read by the real loader."""

from __future__ import annotations

import filecmp

from fsar_bench.data import toy
from fsar_bench.data.cards import get_card
from fsar_bench.data.video import read_frames


def _tree(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_prepare_twice_gives_byte_identical_trees(tmp_path, toy_data_root, cli):
    res = cli("data", "prepare", "toy-motion", "--root", tmp_path / "B")
    assert res.code == 0, res.err
    a, b = toy_data_root / "toy-motion", tmp_path / "B"
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
