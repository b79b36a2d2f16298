"""Decoding the containers and codecs the real datasets ship (avi/MPEG-4 like UCF101 and HMDB51,
webm/VP9 like SSv2, mp4/H.264 like Kinetics, frame folders), and `fsar-bench data check`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import fsar_bench.data.video as video_mod
from fsar_bench.data import cards as cards_mod
from fsar_bench.data import sampling
from fsar_bench.data.cards import load_card
from fsar_bench.data.check import MANIFEST_NAME, availability_digest, check_dataset, missing_videos
from fsar_bench.data.source import VideoSource
from fsar_bench.errors import FsarError

N_FRAMES, SIZE, STEP = 12, 32, 20  # frame t has background grey level STEP * t
CONTAINERS = {  # ext: (container format, encoder)
    "avi": ("avi", "mpeg4"),  # UCF101, HMDB51 (their originals are XviD, i.e. MPEG-4 Part 2)
    "webm": ("webm", "libvpx-vp9"),  # SSv2
    "mp4": ("mp4", "libx264"),  # Kinetics
}


def clip_array(n: int = N_FRAMES) -> np.ndarray:
    """[n, SIZE, SIZE, 3]: a grey background at STEP * t and a white square moving right."""
    video = np.empty((n, SIZE, SIZE, 3), np.uint8)
    for t in range(n):
        video[t] = STEP * t
        video[t, 2:10, t:t + 8] = 255
    return video


def write_video(path: Path, ext: str, n: int = N_FRAMES) -> Path:
    """A tiny video in the container and codec of `ext`, written with PyAV like toy._write_mp4."""
    import av

    fmt, codec = CONTAINERS[ext]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=12)
        stream.width, stream.height = SIZE, SIZE
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        for frame in clip_array(n):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frame_folder(folder: Path, ext: str = "png", n: int = N_FRAMES) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(clip_array(n)):
        Image.fromarray(frame).save(folder / f"img_{t + 1:05d}.{ext}", quality=95)
    return folder


def background_levels(frames: np.ndarray) -> np.ndarray:
    return frames[:, 16:, :, :].reshape(len(frames), -1).mean(axis=1)


# -- decoding -----------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["decord", "pyav", "auto"])
@pytest.mark.parametrize("ext", list(CONTAINERS))
def test_decodes_each_container_at_segment_centres(tmp_path, monkeypatch, backend, ext):
    monkeypatch.setattr(video_mod, "_BACKEND", backend)
    path = write_video(tmp_path / f"clip.{ext}", ext)
    assert video_mod.num_frames(path) == N_FRAMES
    frames, idx = video_mod.read_frames(path, lambda n: sampling.test_indices(n, 8))
    assert idx == sampling.test_indices(N_FRAMES, 8) == [0, 2, 3, 5, 6, 8, 9, 11]
    assert frames.shape == (8, SIZE, SIZE, 3) and frames.dtype == np.uint8
    # the frames decoded are the frames asked for (neighbours differ by STEP grey levels)
    np.testing.assert_allclose(background_levels(frames), np.array(idx) * STEP, atol=STEP / 2)


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_decodes_frame_folders(tmp_path, ext):
    folder = write_frame_folder(tmp_path / "clip", ext)
    (folder / "notes.txt").write_text("not a frame")  # ignored
    assert video_mod.num_frames(folder) == N_FRAMES
    frames, idx = video_mod.read_frames(folder, lambda n: sampling.test_indices(n, 8))
    assert frames.shape == (8, SIZE, SIZE, 3)
    np.testing.assert_allclose(background_levels(frames), np.array(idx) * STEP, atol=STEP / 2)


@pytest.mark.parametrize("backend", ["decord", "pyav", "auto"])
def test_random_bytes_do_not_decode(tmp_path, monkeypatch, backend):
    monkeypatch.setattr(video_mod, "_BACKEND", backend)
    bad = tmp_path / "bad.avi"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(video_mod.VideoError, match="cannot decode"):
        video_mod.read_frames(bad, lambda n: [0])


# -- a fixture dataset ----------------------------------------------------------------------------
SPLIT_LINES = {
    "train": ["Archery/v_Archery_g01_c01", "Archery/v_Archery_g01_c02", "Bowling/v_Bowling_g01_c01"],
    "val": ["Diving/v_Diving_g01_c01", "Diving/v_Diving_g01_c02"],
    "test": ["Fencing/v_Fencing_g01_c01", "Fencing/v_Fencing_g01_c02", "Punch/v_Punch_g01_c01"],
}
MISSING = "Fencing/v_Fencing_g01_c02"  # test split
CORRUPT = "Diving/v_Diving_g01_c01"  # val split


def make_card(tmp_path: Path, name: str = "fake_ucf", pattern: str = "{cls}/{id}.avi", kind: str = "video"):
    folder = tmp_path / "card"
    folder.mkdir(parents=True, exist_ok=True)
    for split, lines in SPLIT_LINES.items():
        (folder / f"{split}.txt").write_text("".join(line + "\n" for line in lines))
    (folder / "card.yaml").write_text(
        f"name: {name}\nmodality: spatial\nsplits: {{train: train.txt, val: val.txt, test: test.txt}}\n"
        f'layout: {{kind: {kind}, pattern: "{pattern}"}}\n'
    )
    return load_card(folder / "card.yaml")


def make_tree(tmp_path: Path, ext: str = "avi", broken: bool = True) -> tuple[VideoSource, Path]:
    """Every video of SPLIT_LINES as a tiny `ext` file; with `broken`, MISSING absent and CORRUPT random bytes."""
    card = make_card(tmp_path, pattern=f"{{cls}}/{{id}}.{ext}")
    root = tmp_path / "root"
    for lines in SPLIT_LINES.values():
        for line in lines:
            cls, vid = line.rsplit("/", 1)
            path = root / cls / f"{vid}.{ext}"
            if broken and line == MISSING:
                continue
            if broken and line == CORRUPT:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(np.random.default_rng(1).integers(0, 256, 8192, dtype=np.uint8).tobytes())
                continue
            write_video(path, ext)
    return VideoSource(card, root, card.layout), root


@pytest.mark.parametrize("ext", list(CONTAINERS))
def test_check_passes_on_a_complete_tree(tmp_path, ext):
    source, root = make_tree(tmp_path, ext, broken=False)
    seen = []
    report = check_dataset(source, progress=lambda done, total: seen.append((done, total)))
    assert report.ok and report.total == report.available == 8
    assert seen[-1] == (8, 8)
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    assert manifest["missing"] == [] and manifest["corrupt"] == []
    assert manifest["digest"] == availability_digest(line for lines in SPLIT_LINES.values() for line in lines)


def test_check_passes_on_frame_folders(tmp_path):
    card = make_card(tmp_path, pattern="{cls}/{id}", kind="frames")
    root = tmp_path / "frames"
    for lines in SPLIT_LINES.values():
        for line in lines:
            write_frame_folder(root / line, "jpg")
    report = check_dataset(VideoSource(card, root, card.layout), splits=["test"])
    assert report.ok and list(report.splits) == ["test"] and report.available == 3


def test_check_reports_exactly_the_missing_and_the_corrupt(tmp_path):
    source, root = make_tree(tmp_path)
    report = check_dataset(source)
    assert not report.ok
    assert report.missing == [MISSING]
    assert list(report.corrupt) == [CORRUPT]
    assert "decord" in report.corrupt[CORRUPT] and "pyav" in report.corrupt[CORRUPT]
    assert str(root) not in report.corrupt[CORRUPT]  # the reason, not the whole error message
    assert (report.splits["test"].missing, report.splits["val"].corrupt, report.splits["train"].available) == (1, 1, 3)
    assert report.available == 6

    manifest = json.loads((root / MANIFEST_NAME).read_text())
    assert manifest["dataset"] == "fake_ucf" and manifest["root"] == os.path.abspath(root)
    assert manifest["missing"] == [MISSING] and manifest["corrupt"] == [CORRUPT]
    assert manifest["splits"]["val"] == {"videos": 2, "available": 1, "missing": 0, "corrupt": 1,
                                         "list_sha256": source.card.split("val").sha256}
    good = sorted(line for lines in SPLIT_LINES.values() for line in lines if line not in (MISSING, CORRUPT))
    assert manifest["digest"] == report.digest == availability_digest(good)
    assert len(manifest["digest"]) == 64
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")]  # atomic write left no temp file


def test_check_writes_to_output_and_checks_only_the_splits_asked(tmp_path):
    source, root = make_tree(tmp_path)
    out = tmp_path / "out" / "avail.json"
    report = check_dataset(source, splits=["train", "test"], output=out)
    assert report.manifest == out and not (root / MANIFEST_NAME).exists()
    assert report.missing == [MISSING] and report.corrupt == {}
    assert set(json.loads(out.read_text())["splits"]) == {"train", "test"}


def test_check_rejects_unknown_split(tmp_path):
    source, _ = make_tree(tmp_path)
    with pytest.raises(FsarError, match="did you mean 'test'"):
        check_dataset(source, splits=["tset"])


def test_missing_videos_is_existence_only(tmp_path):
    source, _ = make_tree(tmp_path)
    assert missing_videos(source, "test") == [MISSING]
    assert missing_videos(source, "val") == []  # the corrupt file exists
    assert missing_videos(source, "train") == []


# -- the CLI --------------------------------------------------------------------------------------
@pytest.fixture
def fake_registry(tmp_path, monkeypatch):
    """Serve the fixture card through get_card, run in a folder without bench.yaml."""
    source, root = make_tree(tmp_path)
    monkeypatch.setattr(cards_mod, "_all_cards", lambda: {source.card.name: source.card})
    monkeypatch.delenv("FSAR_BENCH_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return source, root


def _check_failure_output(result, root):
    assert result.exit_code == 1, result.output
    out = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert str(root / "Fencing" / "v_Fencing_g01_c02.avi") in out
    assert str(root / "Diving" / "v_Diving_g01_c01.avi") in out
    assert "--allow-missing" in out and "re-download" in out
    assert (root / MANIFEST_NAME).exists()


def test_cli_check_fails_and_names_both_files(fake_registry):
    from fsar_bench.cli import data_cmd

    source, root = fake_registry
    result = CliRunner().invoke(data_cmd.app, ["check", "fake_ucf", "--root", str(root)])
    _check_failure_output(result, root)
    assert "missing (1)" in result.output and "corrupt (1)" in result.output
    assert json.loads((root / MANIFEST_NAME).read_text())["digest"]


def test_cli_check_passes_on_the_good_splits(fake_registry, tmp_path):
    from fsar_bench.cli import data_cmd

    source, root = fake_registry
    out = tmp_path / "train.json"
    result = CliRunner().invoke(data_cmd.app, ["check", "fake_ucf", "--root", str(root), "--split", "train",
                                               "--frames", "4", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "all 3 videos" in result.output
    assert json.loads(out.read_text())["frames"] == 4


def test_cli_unknown_dataset_suggests(fake_registry):
    from fsar_bench.cli import data_cmd

    result = CliRunner().invoke(data_cmd.app, ["check", "fake_ucg", "--root", "."])
    assert isinstance(result.exception, FsarError)
    assert "did you mean 'fake_ucf'" in str(result.exception)


def _main_app():
    try:
        from fsar_bench.cli.app import app
    except ImportError as exc:  # the core CLI is assembled elsewhere
        pytest.skip(f"fsar_bench.cli.app is not importable yet ({exc})")
    return app


def test_main_app_data_check(fake_registry):
    app = _main_app()
    _, root = fake_registry
    result = CliRunner().invoke(app, ["data", "check", "fake_ucf", "--root", str(root)])
    _check_failure_output(result, root)


def test_console_script_exit_code(tmp_path):
    """The installed `fsar-bench` on a real card: exit code 1 on missing or corrupt files."""
    _main_app()
    root = tmp_path / "hmdb"
    card = cards_mod.get_card("hmdb51")
    cls, vid = card.split("test").entries[0]
    (root / cls).mkdir(parents=True)
    (root / cls / f"{vid}.avi").write_bytes(b"\0" * 1000)
    env = {k: v for k, v in os.environ.items() if k != "FSAR_BENCH_CONFIG"}
    exe = Path(sys.executable).with_name("fsar-bench")
    cmd = [str(exe) if exe.exists() else "fsar-bench", "data", "check", "hmdb51", "--root", str(root), "--split", "test"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert f"{vid}.avi" in proc.stdout and "missing (1291)" in proc.stdout and "... and 1271 more" in proc.stdout
    assert "--allow-missing" in proc.stderr
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    assert manifest["splits"]["test"]["corrupt"] == 1 and manifest["available"] == 0


@pytest.mark.parametrize(("dataset", "code"), [("fake_ucf", 1), ("fake_ucg", 2)])
def test_cli_main_exit_codes(fake_registry, monkeypatch, capsys, dataset, code):
    """Through `fsar_bench.cli:main` (the console script's entry point, click in non-standalone mode)."""
    _main_app()
    from fsar_bench.cli import main

    _, root = fake_registry
    monkeypatch.setattr(sys, "argv", ["fsar-bench", "data", "check", dataset, "--root", str(root)])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == code
    err = capsys.readouterr().err
    assert ("--allow-missing" if code == 1 else "did you mean 'fake_ucf'") in err


def test_unwritable_manifest_is_reported_not_lost(fake_registry, tmp_path):
    from fsar_bench.cli import data_cmd

    source, root = fake_registry
    report = check_dataset(source, splits=["train"], output=tmp_path)  # a folder: cannot be replaced by a file
    assert report.ok and report.manifest is None and "cannot write" in report.manifest_error
    result = CliRunner().invoke(data_cmd.app, ["check", "fake_ucf", "--root", str(root), "--output", str(tmp_path)])
    assert isinstance(result.exception, FsarError) and "--output" in str(result.exception)
    assert "missing (1)" in result.output  # the report is printed before the error
