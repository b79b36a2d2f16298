"""Decoding the containers and codecs the real datasets ship (avi/MPEG-4 like UCF101 and HMDB51,
webm/VP9 like SSv2, mp4/H.264 like Kinetics, frame folders), and `fsar-bench data check`."""

from __future__ import annotations

import json
import os
import re
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
from fsar_bench.data.check import (MANIFEST_NAME, availability_digest, check_dataset, find_manifest, manifest_path,
                                   missing_videos, read_manifest)
from fsar_bench.data.source import VideoSource
from fsar_bench.errors import FsarError

N_FRAMES, SIZE, STEP = 12, 32, 20  # frame t has background grey level STEP * t
CONTAINERS = {  # ext: (container format, encoder)
    "avi": ("avi", "mpeg4"),  # UCF101, HMDB51 (their originals are XviD, i.e. MPEG-4 Part 2)
    "webm": ("webm", "libvpx-vp9"),  # SSv2
    "mp4": ("mp4", "libx264"),  # Kinetics
}


def clip_array(n: int = N_FRAMES) -> np.ndarray:
    """[n, SIZE, SIZE, 3]: a grey background at STEP * t (mod 256) and a white square moving right."""
    video = np.empty((n, SIZE, SIZE, 3), np.uint8)
    for t in range(n):
        video[t] = STEP * t % 256
        video[t, 2:10, t:t + 8] = 255
    return video


def write_video(path: Path, ext: str, n: int = N_FRAMES, width: int = SIZE) -> Path:
    """A tiny video in the container and codec of `ext`, written with PyAV like toy._write_mp4;
    `width` > SIZE pads the clip on the right with a gradient (so wrong strides show)."""
    import av

    fmt, codec = CONTAINERS[ext]
    path.parent.mkdir(parents=True, exist_ok=True)
    clip = clip_array(n)
    if width != SIZE:
        pad = np.broadcast_to(np.linspace(0, 255, width, dtype=np.uint8)[None, None, :, None], (n, SIZE, width, 3))
        clip = np.concatenate([clip, pad[:, :, SIZE:]], axis=2) if width > SIZE else clip[:, :, :width]
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=12)
        stream.width, stream.height = width, SIZE
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        for frame in clip:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
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
    return frames[:, 16:, :SIZE, :].reshape(len(frames), -1).mean(axis=1)


def installed_decord():
    """decord, loaded as fsar-bench loads it (video.import_decord: a plain `import decord` in the
    test process would put its FFmpeg in the global symbol scope for every later test)."""
    try:
        return video_mod.import_decord()
    except ImportError:
        pytest.skip("decord (decord2) is not installed")


def raw_decord_problem(path: Path) -> str | None:
    """What the installed decord itself does with `path` (no fsar-bench code): None if its
    get_batch returns [T, H, W, 3], else its error."""
    decord = installed_decord()
    try:
        batch = decord.VideoReader(str(path), num_threads=1).get_batch([0]).asnumpy()
    except Exception as exc:  # noqa: BLE001
        return str(exc)
    return None if batch.ndim == 4 and batch.shape[-1] == 3 else f"shape {batch.shape}"


def spy_pyav(monkeypatch) -> list[Path]:
    """Record the files the PyAV reader is called on."""
    calls: list[Path] = []
    real = video_mod._pyav_read
    monkeypatch.setattr(video_mod, "_pyav_read", lambda path, select: (calls.append(path), real(path, select))[1])
    return calls


# -- decoding -----------------------------------------------------------------------------------
# WIDTH 32 is one decord2 3.4.0 mishandles (video_mod.DECORD_BAD_WIDTHS), 40 one it decodes; the
# test asserts what the installed decord does, whatever its version: frames where it works, the
# PyAV fallback (auto) or a clear error (decord forced) where it does not.
@pytest.mark.parametrize("width", [32, 40])
@pytest.mark.parametrize("backend", ["decord", "pyav", "auto"])
@pytest.mark.parametrize("ext", list(CONTAINERS))
def test_decodes_each_container_at_segment_centres(tmp_path, monkeypatch, backend, ext, width):
    monkeypatch.setattr(video_mod, "_BACKEND", backend)
    pyav_calls = spy_pyav(monkeypatch)
    path = write_video(tmp_path / f"clip.{ext}", ext, width=width)
    decord_problem = raw_decord_problem(path) if backend != "pyav" else None
    select = lambda n: sampling.test_indices(n, 8)  # noqa: E731
    if backend == "decord" and decord_problem:
        assert "DECORDArrayCopyFromTo" in decord_problem  # the failure characterised in video.py, not another
        with pytest.raises(video_mod.VideoError, match="cannot return frames of this width.*set it to pyav"):
            video_mod.read_frames(path, select)
        return
    assert video_mod.num_frames(path) == N_FRAMES
    frames, idx = video_mod.read_frames(path, select)
    assert idx == sampling.test_indices(N_FRAMES, 8) == [0, 2, 3, 5, 6, 8, 9, 11]
    assert frames.shape == (8, SIZE, width, 3) and frames.dtype == np.uint8
    # the frames decoded are the frames asked for (neighbours differ by STEP grey levels)
    np.testing.assert_allclose(background_levels(frames), np.array(idx) * STEP, atol=STEP / 2)
    if backend == "auto":  # PyAV was used exactly when the installed decord fails on the file
        assert pyav_calls == ([path] if decord_problem else [])


@pytest.mark.parametrize(("ext", "width", "n"), [("avi", 40, 12), ("webm", 40, 12), ("mp4", 40, 12),
                                                  ("mp4", 64, 30), ("webm", 160, 30), ("avi", 34, 7)])
def test_decord_and_pyav_return_identical_frames(tmp_path, ext, width, n):
    """Same frame count and bit-identical frames, so the test frames do not depend on the backend."""
    installed_decord()
    path = write_video(tmp_path / f"clip.{ext}", ext, n=n, width=width)
    assert raw_decord_problem(path) is None, "a width the installed decord decodes is needed here"
    every = lambda k: list(range(k))  # noqa: E731
    n_decord, by_decord = video_mod._decord_read(path, every)
    n_pyav, by_pyav = video_mod._pyav_read(path, every)
    assert n_decord == n_pyav == list(range(n))
    assert by_decord.shape == by_pyav.shape == (n, SIZE, width, 3)
    np.testing.assert_array_equal(by_decord, by_pyav)


@pytest.mark.parametrize("width", [2, 24, 32, 48, 96, 144, 10, 40, 64, 100, 146, 160, 320])
def test_decord2_3_4_0_width_characterisation(tmp_path, width):
    """decord2 3.4.0 fails exactly on DECORD_BAD_WIDTHS (video.py); other versions: see the test above."""
    decord = installed_decord()
    if getattr(decord, "__version__", "") != "3.4.0":
        pytest.skip(f"characterises decord2 3.4.0; {decord.__version__} is installed")
    path = write_video(tmp_path / "clip.avi", "avi", n=2, width=width)
    problem = raw_decord_problem(path)
    assert (problem is not None) == (width in video_mod.DECORD_BAD_WIDTHS), problem
    if problem:
        assert "DECORDArrayCopyFromTo" in problem


ENCODE_AFTER = """
import hashlib, sys
from pathlib import Path
import numpy as np

def encode(path, width):
    import av  # after decord, like the toy generator in a process that decoded first

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = width, 32, "yuv420p"
        stream.codec_context.thread_count = 1
        rng = np.random.default_rng(0)
        for t in range(24):
            frame = rng.integers(0, 256, (32, width, 3), dtype=np.uint8)  # busy content: encoder builds differ
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)

mode, out = sys.argv[1], Path(sys.argv[2])
if mode != "plain":  # load decord and decode with it first
    import fsar_bench.data.video as video_mod
    video_mod.import_decord() if mode == "fsar" else __import__("decord")
    encode(out.with_name("probe.mp4"), 40)
    assert video_mod._decord_read(out.with_name("probe.mp4"), lambda n: [0])[1].shape == (1, 32, 40, 3)
encode(out, 64)
print(hashlib.sha256(out.read_bytes()).hexdigest())
"""


def test_pyav_encodes_the_same_bytes_after_decord_is_loaded(tmp_path):
    """decord loads its own FFmpeg/libx264 RTLD_GLOBAL, and PyAV imported after it bound to that
    copy (toy videos written in a process that decoded first came out different; with a plain
    `import decord` in place of video.import_decord the digests here differ)."""
    installed_decord()

    def digest(mode: str) -> str:
        proc = subprocess.run([sys.executable, "-c", ENCODE_AFTER, mode, str(tmp_path / f"{mode}.mp4")],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split()[-1]

    assert digest("fsar") == digest("plain")


CONCURRENT_IMPORT = """
import threading
import fsar_bench.data.video as video_mod
barrier, seen = threading.Barrier(4), []
def first_use():
    barrier.wait()
    seen.append(hasattr(video_mod.import_decord(), "logging"))
threads = [threading.Thread(target=first_use) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(seen)
"""


def test_first_decord_use_from_several_threads_sees_the_whole_module():
    """The pre-flight probe's threads import decord together; none may get a half-imported module."""
    installed_decord()
    proc = subprocess.run([sys.executable, "-c", CONCURRENT_IMPORT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.split("\n")[0] == str([True] * 4), proc.stdout + proc.stderr


# -- decoder log lines (#15): our one-line error, no ffmpeg/decord chatter before it ---------------------
def _garbled_mp4(path: Path) -> Path:
    """An H.264 mp4 whose header is fine and whose middle is random bytes."""
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path.with_suffix(".tmp.mp4")), "w", format="mp4", options={"movflags": "faststart"}) as c:
        stream = c.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 112, 64, "yuv420p"
        for _ in range(24):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (64, 112, 3), dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
    data = bytearray(path.with_suffix(".tmp.mp4").read_bytes())
    data[len(data) // 3:len(data) // 3 + 4000] = rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


BAD_FILES = {  # name: writer
    "random-bytes.avi": lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)),
    # the moov atom is at the end of PyAV's mp4: cut it off
    "no-moov.mp4": lambda p: p.write_bytes(write_video(p.with_suffix(".ok.mp4"), "mp4").read_bytes()[:-400]),
    "garbled.mp4": _garbled_mp4,
}


@pytest.mark.parametrize("backend", ["decord", "auto"])
@pytest.mark.parametrize("name", list(BAD_FILES))
def test_decoder_log_lines_are_silenced(tmp_path, monkeypatch, capfd, backend, name):
    """Without the filter decord prints e.g. `[09:13:10] /project/src/video/video_reader.cc:86: ERROR
    opening ...` and its FFmpeg `[mov,mp4,... @ 0x55..] moov atom not found` to fd 2."""
    installed_decord()
    monkeypatch.setattr(video_mod, "_BACKEND", backend)
    real = video_mod._decord_read

    def chatty(path, select):  # our own output while the decoders run still reaches stderr
        os.write(2, b"fsar: a line of ours\n")
        print("fsar: a python line", file=sys.stderr)
        return real(path, select)

    monkeypatch.setattr(video_mod, "_decord_read", chatty)
    path = tmp_path / name
    BAD_FILES[name](path)
    capfd.readouterr()
    with pytest.raises(video_mod.VideoError, match=f"cannot decode {path}") as exc:
        video_mod.read_frames(path, lambda n: list(range(n)))
    err = capfd.readouterr().err
    assert "fsar: a line of ours" in err and "fsar: a python line" in err
    assert not re.search(r"\.cc:\d+:|@ 0x[0-9a-f]+\]", err), err
    assert "\n" not in exc.value.problem and not re.search(r"\[\d\d:\d\d:\d\d\]", exc.value.problem)


@pytest.mark.parametrize(("chunks", "expected"), [
    ([b"[09:13:10] /project/src/video/video_reader.cc:86: ERROR opening: x.mp4, Invalid data\n"], b""),
    ([b"[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5604d1010480] moov atom not found\n"], b""),
    ([b"[h264 @ 0x56", b"48bc37eb80] Invalid NAL unit size\n", b"ours\n"], b"ours\n"),
    ([b"\rchecking 1/8", b"\rchecking 2/8"], b"\rchecking 1/8\rchecking 2/8"),
    ([b"[note] ours, bracketed\n", b"Traceback (most recent call last):\n  File \"x.py\"\n"],
     b"[note] ours, bracketed\nTraceback (most recent call last):\n  File \"x.py\"\n"),
    ([b"[partial line of ours without newline"], b"[partial line of ours without newline"),
])
def test_stderr_filter_drops_only_decoder_lines(chunks, expected):
    from fsar_bench.data import quiet

    read_fd, write_fd = os.pipe()
    held = b""
    for chunk in chunks:
        held = quiet._forward(held + chunk, write_fd, final=False)
    quiet._forward(held, write_fd, final=True)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as fh:
        assert fh.read() == expected


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
    cache = tmp_path / "results" / "cache"
    report = check_dataset(source, progress=lambda done, total: seen.append((done, total)), cache_dir=cache)
    assert report.ok and report.total == report.available == 8
    assert seen[-1] == (8, 8)
    assert report.manifest == manifest_path(source, cache) and report.manifest.parent == cache / "availability"
    assert not (root / MANIFEST_NAME).exists()
    manifest = json.loads(report.manifest.read_text())
    assert manifest["missing"] == [] and manifest["corrupt"] == []
    assert manifest["digest"] == availability_digest(line for lines in SPLIT_LINES.values() for line in lines)


def test_check_passes_on_frame_folders(tmp_path):
    card = make_card(tmp_path, pattern="{cls}/{id}", kind="frames")
    root = tmp_path / "frames"
    for lines in SPLIT_LINES.values():
        for line in lines:
            write_frame_folder(root / line, "jpg")
    report = check_dataset(VideoSource(card, root, card.layout), splits=["test"], cache_dir=tmp_path / "cache")
    assert report.ok and list(report.splits) == ["test"] and report.available == 3


def test_check_reports_exactly_the_missing_and_the_corrupt(tmp_path):
    source, root = make_tree(tmp_path)
    report = check_dataset(source, cache_dir=tmp_path / "cache")
    assert not report.ok
    assert report.missing == [MISSING]
    assert list(report.corrupt) == [CORRUPT]
    assert "decord" in report.corrupt[CORRUPT] and "pyav" in report.corrupt[CORRUPT]
    assert str(root) not in report.corrupt[CORRUPT]  # the reason, not the whole error message
    assert (report.splits["test"].missing, report.splits["val"].corrupt, report.splits["train"].available) == (1, 1, 3)
    assert report.available == 6

    manifest = json.loads(report.manifest.read_text())
    assert manifest["dataset"] == "fake_ucf" and manifest["root"] == os.path.abspath(root)
    assert manifest["missing"] == [MISSING] and manifest["corrupt"] == [CORRUPT]
    assert manifest["splits"]["val"] == {"videos": 2, "available": 1, "missing": 0, "corrupt": 1,
                                         "list_sha256": source.card.split("val").sha256}
    good = sorted(line for lines in SPLIT_LINES.values() for line in lines if line not in (MISSING, CORRUPT))
    assert manifest["digest"] == report.digest == availability_digest(good)
    assert len(manifest["digest"]) == 64
    assert [p.name for p in report.manifest.parent.iterdir()] == [report.manifest.name]  # atomic: no temp file


def test_check_writes_to_output_and_checks_only_the_splits_asked(tmp_path):
    source, root = make_tree(tmp_path)
    out = tmp_path / "out" / "avail.json"
    report = check_dataset(source, splits=["train", "test"], output=out, cache_dir=tmp_path / "cache")
    assert report.manifest == out and not (root / MANIFEST_NAME).exists() and not (tmp_path / "cache").exists()
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
    assert not (root / MANIFEST_NAME).exists()
    return cli_manifest(root)


def cli_manifest(root: Path) -> dict:
    """The manifest the CLI wrote for `root`, under ./fsar-runs/cache (the default results folder)."""
    found = list(Path("fsar-runs", "cache", "availability").glob("fake_ucf-*.json"))
    assert len(found) == 1, found
    manifest = read_manifest(found[0])
    assert manifest["root"] == os.path.abspath(root)
    return manifest


def test_cli_check_fails_and_names_both_files(fake_registry):
    from fsar_bench.cli import data_cmd

    source, root = fake_registry
    result = CliRunner().invoke(data_cmd.app, ["check", "fake_ucf", "--root", str(root)])
    manifest = _check_failure_output(result, root)
    assert "missing (1)" in result.output and "corrupt (1)" in result.output
    assert manifest["digest"] and manifest["digest"][:16] in result.output


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
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [proc.stderr.strip()]  # no decoder lines
    assert not (root / MANIFEST_NAME).exists()
    [found] = (tmp_path / "fsar-runs" / "cache" / "availability").glob("hmdb51-*.json")
    manifest = json.loads(found.read_text())
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


# -- the manifest lives under the results folder (#19): read-only roots, legacy manifests --------------
def _tree_state(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def test_cli_check_works_on_a_read_only_root(fake_registry, tmp_path):
    from fsar_bench.cli import data_cmd

    source, root = fake_registry
    before = _tree_state(root)
    modes = {p: p.stat().st_mode for p in [root, *root.rglob("*")]}
    try:
        for p in [root, *root.rglob("*")]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        result = CliRunner().invoke(data_cmd.app, ["check", "fake_ucf", "--root", str(root), "--split", "train",
                                                   "--results-dir", str(tmp_path / "res")])
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
    assert result.exit_code == 0, result.output
    assert _tree_state(root) == before  # nothing written into the dataset root (even when running as root)
    [manifest] = (tmp_path / "res" / "cache" / "availability").glob("fake_ucf-*.json")
    assert str(manifest) in result.output and json.loads(manifest.read_text())["available"] == 3


def test_manifest_is_keyed_by_dataset_root_and_layout(tmp_path):
    source, root = make_tree(tmp_path)
    other = VideoSource(source.card, tmp_path / "elsewhere", source.layout)
    cache = tmp_path / "cache"
    assert manifest_path(source, cache) != manifest_path(other, cache)
    assert manifest_path(source, cache).name.startswith("fake_ucf-")
    assert manifest_path(source, cache) == manifest_path(VideoSource(source.card, root, source.layout), cache)


def test_legacy_manifest_in_the_root_is_still_read(tmp_path):
    source, root = make_tree(tmp_path)
    cache = tmp_path / "cache"
    legacy = root / MANIFEST_NAME
    legacy.write_text(json.dumps({"version": 1, "dataset": "fake_ucf", "digest": "old"}))
    assert find_manifest(source, cache) == legacy and read_manifest(root)["digest"] == "old"
    report = check_dataset(source, splits=["test"], cache_dir=cache)
    assert find_manifest(source, cache) == report.manifest == manifest_path(source, cache)  # the new one wins
    assert json.loads(legacy.read_text())["digest"] == "old"  # never rewritten
    assert read_manifest(report.manifest)["digest"] == report.digest
