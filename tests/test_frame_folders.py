"""Frame folders as the public releases ship them (#19 section 3) and damaged frames (#15): the
naming conventions, numeric frame order, the pre-flight probe and `data check` on bad frames.

Folders are built with Pillow and read through the loader of real data (`VideoSource`)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from fsar_bench.data import sampling
from fsar_bench.data.cards import load_card
from fsar_bench.data.check import check_dataset
from fsar_bench.data.frames import frame_files
from fsar_bench.data.preflight import Preflight
from fsar_bench.data.source import VideoSource
from fsar_bench.data.video import VideoError, num_frames, read_frames, verify_frame_folder
from fsar_bench.errors import FsarError

SIZE, LEVEL = 24, 6  # frame t (0-based, in frame order) has grey level LEVEL * t


def frame_image(t: int, size: int = SIZE) -> np.ndarray:
    return np.full((size, size, 3), LEVEL * t, np.uint8)


def write_frames(folder: Path, name: str, n: int, first: int = 1, size: int = SIZE) -> list[Path]:
    """Frames 0..n-1 saved as name.format(first + t), e.g. name="img_{:05d}.jpg"."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for t in range(n):
        path = folder / name.format(first + t)
        Image.fromarray(frame_image(t, size)).save(path, quality=95)
        paths.append(path)
    return paths


def levels(clip: np.ndarray) -> np.ndarray:
    return clip.reshape(len(clip), -1).mean(axis=1)


def fake_source(tmp_path: Path, folders: dict[str, str]) -> VideoSource:
    """A card whose test split is the keys of `folders` (class/id), laid out as frame folders."""
    card_dir = tmp_path / "card"
    card_dir.mkdir()
    for split in ("train", "val", "test"):
        (card_dir / f"{split}.txt").write_text("".join(f"{k}\n" for k in folders) if split == "test" else "c/none\n")
    (card_dir / "card.yaml").write_text(
        "name: fake_frames\nmodality: spatial\nsplits: {train: train.txt, val: val.txt, test: test.txt}\n"
        'layout: {kind: frames, pattern: "{cls}/{id}"}\n')
    card = load_card(card_dir / "card.yaml")
    return VideoSource(card, tmp_path / "root", card.layout)


# -- naming conventions: one line per case -----------------------------------------------------------
CONVENTIONS = [  # (frame file name, first number, frames)
    ("{:08d}.jpg", 1, 12),  # TRX, fsar-lib
    ("img_{:05d}.jpg", 1, 12),  # MMAction2 rawframes
    ("frame{:04d}.png", 1, 12),
    ("frame_{:d}.png", 0, 12),  # unpadded from 0: frame_10 follows frame_9
    ("img_{:d}.jpg", 1, 37),  # unpadded, a longer video
    ("{:05d}.png", 1, 5),  # shorter than the 8 test frames: frames repeat
    ("image_{:06d}.jpeg", 1, 9),
    ("{:d}.bmp", 1, 11),
]


@pytest.mark.parametrize(("name", "first", "n"), CONVENTIONS)
def test_naming_conventions_read_in_frame_order(tmp_path, name, first, n):
    source = fake_source(tmp_path, {"c/v": name})
    paths = write_frames(source.path("c", "v"), name, n, first)
    assert frame_files(source.path("c", "v")) == paths  # numeric order, not lexical
    assert num_frames(source.path("c", "v")) == n
    clip, idx = read_frames(source.path("c", "v"), lambda k: sampling.test_indices(k, 8))
    assert idx == sampling.test_indices(n, 8)
    assert clip.shape == (8, SIZE, SIZE, 3)
    np.testing.assert_allclose(levels(clip), LEVEL * np.array(idx), atol=2)  # frame idx[i] is the idx[i]-th file
    assert verify_frame_folder(source.path("c", "v"), 8) == n
    assert check_dataset(source, splits=["test"], write=False).ok


def test_loader_of_real_data_reads_the_segment_centres(tmp_path):
    from fsar_bench.data.transforms import ClipTransform

    source = fake_source(tmp_path, {"c/a": "", "c/b": ""})
    write_frames(source.path("c", "a"), "img_{:d}.jpg", 10)
    write_frames(source.path("c", "b"), "{:08d}.jpg", 20)  # folders with different frame counts
    tf = ClipTransform.for_size(SIZE, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), flip=False)
    for vid, n in (("a", 10), ("b", 20)):
        clip, idx = source.load("c", vid, 4, tf)
        assert idx == sampling.test_indices(n, 4) and tuple(clip.shape) == (4, 3, SIZE, SIZE)
        np.testing.assert_allclose(clip.mean(dim=(1, 2, 3)).numpy() * 255, LEVEL * np.array(idx), atol=2)


def test_mmaction2_folder_with_flow_uses_the_rgb_frames(tmp_path):
    folder = tmp_path / "v"
    rgb = write_frames(folder, "img_{:05d}.jpg", 6)
    write_frames(folder, "flow_x_{:05d}.jpg", 5)
    write_frames(folder, "flow_y_{:05d}.jpg", 5)
    (folder / "notes.txt").write_text("not a frame")
    (folder / "cover.jpg").write_bytes(rgb[0].read_bytes())  # no number: not a frame
    assert frame_files(folder) == rgb


@pytest.mark.parametrize(("names", "message"), [
    (["x_{:05d}.jpg", "y_{:05d}.jpg"], r"several sequences \(x_\*, y_\*\)"),
    (["img_{:d}.jpg", "img_{:02d}.png"], "two frames numbered 1"),
    ([], "no numbered frame images"),
])
def test_ambiguous_or_empty_folders_are_one_line_errors(tmp_path, names, message):
    folder = tmp_path / "v"
    folder.mkdir()
    for name in names:
        write_frames(folder, name, 3)
    with pytest.raises(VideoError, match=message) as exc:
        num_frames(folder)
    assert str(folder) in exc.value.problem and "\n" not in str(exc.value)


# -- damaged frames: found by the probe, before a run writes anything -----------------------------------
def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _resize(p: Path) -> None:
    from PIL import Image

    Image.fromarray(frame_image(0, SIZE + 8)).save(p)


DAMAGE = {  # name: (frame file name, what is done to one frame, message); one line per case
    "truncated-jpeg": ("img_{:05d}.jpg", _truncate, "truncated (no JPEG end marker)"),
    "truncated-png": ("{:08d}.png", _truncate, "truncated (no PNG IEND chunk)"),
    "empty": ("img_{:05d}.jpg", lambda p: p.write_bytes(b""), "empty file"),
    "not-an-image": ("frame{:04d}.jpg", lambda p: p.write_bytes(b"<html>404</html>" * 20), "not a JPEG, PNG or BMP"),
    "other-size-jpeg": ("img_{:05d}.jpg", _resize, "frames of different sizes"),
    "other-size-png": ("{:08d}.png", _resize, "frames of different sizes"),
}
CENTRE, NOT_CENTRE = 5, 4  # 0-based frame indices of a 12-frame folder: a test frame, and one only training reads


@pytest.mark.parametrize("frame", [CENTRE, NOT_CENTRE])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_frames_fail_the_probe_with_the_frame_named(tmp_path, damage, frame):
    """A frame only training reads is caught too (its markers and header size are checked)."""
    assert CENTRE in sampling.test_indices(12, 8) and NOT_CENTRE not in sampling.test_indices(12, 8)
    name, do, message = DAMAGE[damage]
    source = fake_source(tmp_path, {"c/good": "", "c/bad": ""})
    write_frames(source.path("c", "good"), name, 12)
    paths = write_frames(source.path("c", "bad"), name, 12)
    do(paths[frame])
    keys = [("c", "good"), ("c", "bad")]
    with pytest.raises(FsarError, match=re.escape(message)) as exc:
        Preflight(source, tmp_path / "cache").check(keys)
    assert str(source.path("c", "bad")) in exc.value.problem and paths[frame].name in exc.value.problem
    assert "re-extract" in exc.value.fix and "\n" not in str(exc.value)
    report = check_dataset(source, splits=["test"], write=False)
    assert list(report.corrupt) == ["c/bad"] and message in report.corrupt["c/bad"]


def test_jpeg_with_bytes_after_its_end_marker_is_complete(tmp_path):
    """Some writers append data after the JPEG end marker: such a frame decodes and is accepted."""
    paths = write_frames(tmp_path / "v", "img_{:05d}.jpg", 8)
    paths[3].write_bytes(paths[3].read_bytes() + b"trailer" * 40)
    assert verify_frame_folder(tmp_path / "v", 8) == 8
    clip, _ = read_frames(tmp_path / "v", lambda n: list(range(n)))
    np.testing.assert_allclose(levels(clip), LEVEL * np.arange(8), atol=2)


def test_truncated_frame_is_refused_even_with_load_truncated_images(tmp_path, monkeypatch):
    """Training code often sets Pillow's LOAD_TRUNCATED_IMAGES; a cut frame is still an error, not grey."""
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    for name in ("{:08d}.png", "{:08d}.jpg"):
        paths = write_frames(tmp_path / name[-3:], name, 8)
        _truncate(paths[0])
        with pytest.raises(VideoError, match=f"00000001.{name[-3:]}: truncated"):
            read_frames(tmp_path / name[-3:], lambda n: [0])


def test_frame_format_is_read_from_the_content_not_the_name(tmp_path):
    """Some extractors write PNG data into .jpg files; Pillow and the probe both go by the content."""
    from PIL import Image

    paths = write_frames(tmp_path / "v", "img_{:05d}.jpg", 6)
    Image.fromarray(frame_image(2)).save(paths[2], format="PNG")
    assert verify_frame_folder(tmp_path / "v", 4) == 6
    clip, idx = read_frames(tmp_path / "v", lambda n: list(range(n)))
    np.testing.assert_allclose(levels(clip), LEVEL * np.arange(6), atol=2)


def test_probe_remembers_good_folders_and_notices_changes(tmp_path):
    source = fake_source(tmp_path, {"c/a": "", "c/b": ""})
    write_frames(source.path("c", "a"), "{:08d}.png", 12)
    paths = write_frames(source.path("c", "b"), "{:08d}.png", 12)
    keys = [("c", "a"), ("c", "b")]
    first = Preflight(source, tmp_path / "cache", frames=8)
    assert first.check(keys) == 2
    first.save()
    assert Preflight(source, tmp_path / "cache", frames=8).check(keys) == 0
    assert Preflight(source, tmp_path / "cache", frames=4).check(keys) == 2  # other test frames: probed again
    _truncate(paths[-1])
    os.utime(paths[-1], ns=(1, 1))  # even with an old mtime, the size changed
    with pytest.raises(FsarError, match="00000012.png: truncated"):
        Preflight(source, tmp_path / "cache", frames=8).check(keys)


# -- end to end: a run on a frame-folder dataset ---------------------------------------------------------
def test_run_on_frame_folders_stops_before_writing_on_a_damaged_frame(workdir, cli, monkeypatch):
    """A truncated frame only training would read stops `fsar-bench run` with one line and no run
    folder; once re-extracted, the same command evaluates the frame folders."""
    from fsar_bench.data import cards as cards_mod

    classes = {"train": ["Diving", "Fencing"], "test": ["Archery", "Bowling"]}
    card_dir, root = workdir / "card", workdir / "frames"
    card_dir.mkdir()
    names = iter(["{:08d}.jpg", "img_{:05d}.jpg", "frame{:04d}.png", "img_{:d}.jpg"] * 2)
    for split, cls in classes.items():
        lines = [f"{c}/{c.lower()}_{i}" for c in cls for i in range(2)]
        (card_dir / f"{split}.txt").write_text("".join(f"{line}\n" for line in lines))
        for i, line in enumerate(lines):
            write_frames(root / line, next(names), 10 + 3 * i)
    (card_dir / "class_map.tsv").write_text("split\tfolder_class\tclipfsar_text_name\n" + "".join(
        f"{s}\t{c}\t{c.lower()}\n" for s, cls in classes.items() for c in cls))
    (card_dir / "card.yaml").write_text(
        "name: fake_frames\nmodality: spatial\nsplits: {train: train.txt, test: test.txt}\n"
        'layout: {kind: frames, pattern: "{cls}/{id}"}\nclass_map: class_map.tsv\n'
        "seeds: {test: fake/test/v1, val: fake/val/v1}\n")
    real = cards_mod._all_cards()
    monkeypatch.setattr(cards_mod, "_all_cards",
                        lambda: {**real, "fake_frames": cards_mod.load_card(card_dir / "card.yaml")})
    bad = frame_files(root / "Bowling" / "bowling_1")[1]  # never a test frame (segment centres of 8)
    good = bad.read_bytes()
    _truncate(bad)
    args = ["run", "protonet", "--dataset", "fake_frames", "--root", root, "--preset", "tiny", "--way", "2",
            "--shot", "1", "--episodes", "4", "--no-train"]
    res = cli(*args)
    assert res.code == 2, (res.out, res.err)
    errors = [line for line in res.err.splitlines() if line.strip() and not line.startswith("  ")]
    assert len(errors) == 1 and f"{bad.name}: truncated" in errors[0] and "re-extract" in errors[0], res.err
    assert not (workdir / "fsar-runs").exists()  # no run folder, no cache, nothing half-written
    bad.write_bytes(good)
    res = cli(*args)
    assert res.code == 0, (res.out, res.err)
    assert "accuracy" in (res.out + res.err).lower()
