"""The toy generator is a pure function of the seed (#15): the same bytes in every process,
whatever was imported or allocated before, and the bytes the canonical manifest digest locks.

Before generator version 4, 3-9% of the videos differed between processes: libx264's
macroblock-tree rate control made encodes of identical frames depend on the heap (toy.py); and a
process that had loaded decord first encoded with decord's libx264 (fixed in data/video.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from fsar_bench.data import toy
from fsar_bench.data.cards import get_card

N_VIDEOS = 12  # per kind; the old encoder changed about one video in twenty

# Each child writes the same subset of both toy datasets and prints their manifest lines (SHA-256,
# size, path of every file). The preludes change what the process did before generating.
PRELUDES = {
    "numpy-only": "import numpy",
    "torch-first": "import torch; torch.randn(512, 512) @ torch.randn(512, 512)",
    # decord bundles another FFmpeg/libx264 build; loaded first, it must not become PyAV's (video.import_decord)
    "decord-first": "from fsar_bench.data import video\ntry:\n    video.import_decord()\nexcept ImportError:\n    pass",
    "allocations": "import numpy as np; r = np.random.default_rng(1); "
                   "keep = [np.empty(int(n), np.uint8) for n in r.integers(1, 1 << 21, 300)][::3]; "
                   "odd = np.empty(10**7 + 13, np.uint8)[13:].view(np.uint8)",
}
CHILD = """
import json, sys, tempfile
from pathlib import Path
from fsar_bench.data import toy
from fsar_bench.data.cards import get_card
lines = []
for name in ("toy-appearance", "toy-motion"):
    card = get_card(name)
    for line in toy.split_lists(card)["test"][::23][:int(sys.argv[1])]:
        lines += toy.write_video(card, Path(tempfile.mkdtemp()) / name, line)
print(json.dumps(lines))
"""


def _subset_in_process(tmp_path) -> list[str]:
    lines = []
    for name in ("toy-appearance", "toy-motion"):
        card = get_card(name)
        for line in toy.split_lists(card)["test"][::23][:N_VIDEOS]:
            lines += toy.write_video(card, tmp_path / name, line)
    return lines


def test_subset_bytes_equal_across_processes_and_import_orders(tmp_path):
    children = {mode: subprocess.Popen([sys.executable, "-c", prelude + "\n" + CHILD, str(N_VIDEOS)],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for mode, prelude in PRELUDES.items()}
    here = _subset_in_process(tmp_path)  # this process: pytest, torch and the whole test session loaded
    assert len(here) == 2 * 2 * N_VIDEOS
    for mode, child in children.items():
        out, err = child.communicate()
        assert child.returncode == 0, f"{mode}: {err}"
        theirs = json.loads(out)
        differing = [a.rsplit("  ", 1)[1] for a, b in zip(here, theirs) if a != b]
        assert theirs == here, f"{mode}: {len(differing)} files differ, first {differing[:3]}"


def test_generated_datasets_are_the_locked_bytes(toy_data_root):
    """The session's datasets (toy-motion generated in this process, toy-appearance in a child)
    have the canonical manifest digest, so their runs record the canonical data_version."""
    for name in ("toy-appearance", "toy-motion"):
        card = get_card(name)
        assert toy.data_version(card, toy_data_root / name) == toy.data_version(card)
        assert toy.data_version(card).startswith(f"{toy.TOY_VERSIONS[card.toy['generator']]}+sha256:")


def test_repeated_encodes_of_the_same_frames_are_identical(tmp_path):
    """The encoder itself: the old settings gave a different bitstream for about one clip in
    twenty when the same frames were encoded again with other allocations in between."""
    card = get_card("toy-motion")
    rng = np.random.default_rng(0)
    for k, line in enumerate(toy.split_lists(card)["val"][::29][:6]):
        video, _ = toy.render("motion", line.split("/")[0], np.random.default_rng(k), 64, 16)
        encodes = set()
        for rep in range(3):
            keep = [np.empty(int(n), np.uint8) for n in rng.integers(1, 1 << 16, 20)]  # noqa: F841
            toy._write_mp4(tmp_path / f"{rep}.mp4", video.copy())
            encodes.add((tmp_path / f"{rep}.mp4").read_bytes())
        assert len(encodes) == 1, line


@pytest.mark.parametrize(("rgb", "yuv"), [((0, 0, 0), (16, 128, 128)), ((255, 255, 255), (235, 128, 128)),
                                          ((255, 0, 0), (82, 90, 240)), ((0, 0, 255), (41, 240, 110))])
def test_rgb_to_yuv420p_is_bt601_limited_range(rgb, yuv):
    planes = toy.rgb_to_yuv420p(np.full((4, 6, 3), rgb, np.uint8))
    assert planes.shape == (6, 6)  # Y 4x6, then U and V (2x3 each) as one row of 6 each
    assert (planes[:4] == yuv[0]).all() and (planes[4] == yuv[1]).all() and (planes[5] == yuv[2]).all()
