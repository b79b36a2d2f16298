"""The bad-input matrix of the CLI (cases beyond tests/test_cli_errors.py and tests/test_data_check.py).

Every case: exit code 2, one line on stderr starting "error:" that names the problem and the fix,
and no run folder written. Cases the engine cannot honour yet are xfail with the reason.

Issue #15 cases are tables (USAGE, NUMBERS, FILES, TRACKING, OUTPUTS, PROCESSES): a new case is one
line `(arguments, fragment of the error line)`. They run in-process through the real `main()`;
PROCESSES starts the console script once per class of error (the vendored-click problem of typer
showed only there).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fsar_bench import Method, registry
from fsar_bench.data import cards as cards_mod
from fsar_bench.data import video as video_mod

TEST_CLASSES = {"Archery": ["v_Archery_g01_c01", "v_Archery_g01_c02"],
                "Bowling": ["v_Bowling_g01_c01", "v_Bowling_g01_c02"]}
TRAIN_CLASSES = {"Diving": ["v_Diving_g01_c01", "v_Diving_g01_c02"],
                 "Fencing": ["v_Fencing_g01_c01", "v_Fencing_g01_c02"]}
QUICK = ["--preset", "tiny", "--way", "2", "--shot", "1", "--episodes", "4", "--no-train"]


def one_line_error(res, *needles: str) -> str:
    """Exit code 2 and exactly one 'error:' line (indented progress lines aside) containing `needles`."""
    assert res.code == 2, (res.code, res.out, res.err)
    lines = [line for line in res.err.splitlines() if line.strip() and not line.startswith("  ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.err
    assert "; " in lines[0], lines[0]  # '<problem>; <fix>'
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def nothing_written(workdir: Path) -> None:
    assert not (workdir / "fsar-runs").exists(), sorted(p.name for p in (workdir / "fsar-runs").rglob("*"))


# -- a real-looking dataset (card with class map, split lists, videos) ----------------------------------
@pytest.fixture()
def fake_dataset(workdir, toy_data_root, monkeypatch):
    """Card 'fake_ucf' (served by get_card) and a root with a copy of a toy video for every entry."""
    folder, root = workdir / "fake" / "card", workdir / "fake" / "videos"
    folder.mkdir(parents=True)
    clip = next(iter(sorted((toy_data_root / "toy-appearance").rglob("*.mp4"))))
    splits = {"train": TRAIN_CLASSES, "test": TEST_CLASSES}
    for split, classes in splits.items():
        (folder / f"{split}.txt").write_text("".join(f"{c}/{v}\n" for c, vids in classes.items() for v in vids))
        for c, vids in classes.items():
            (root / c).mkdir(parents=True, exist_ok=True)
            for v in vids:
                shutil.copy(clip, root / c / f"{v}.mp4")
    (folder / "class_map.tsv").write_text("split\tfolder_class\tclipfsar_text_name\n" + "".join(
        f"{split}\t{c}\t{c.lower()}\n" for split, classes in splits.items() for c in classes))
    (folder / "card.yaml").write_text(
        "name: fake_ucf\nmodality: spatial\nsplits: {train: train.txt, test: test.txt}\n"
        'layout: {kind: video, pattern: "{cls}/{id}.mp4"}\nclass_map: class_map.tsv\n'
        "seeds: {test: fake/test/v1, val: fake/val/v1}\n")
    real = cards_mod._all_cards()

    def cards():
        return {**real, "fake_ucf": cards_mod.load_card(folder / "card.yaml")}  # re-read: tests edit the files

    monkeypatch.setattr(cards_mod, "_all_cards", cards)
    return folder, root


def run_fake(cli, root, *extra):
    return cli("run", "protonet", "--dataset", "fake_ucf", "--root", root, *QUICK, *extra)


def test_missing_video(fake_dataset, workdir, cli):
    _, root = fake_dataset
    (root / "Bowling" / "v_Bowling_g01_c02.mp4").unlink()
    one_line_error(run_fake(cli, root), "1 videos of the test split", "Bowling/v_Bowling_g01_c02",
                   "fsar-bench data check", "--allow-missing")
    nothing_written(workdir)


def _corrupt(root: Path) -> Path:
    bad = root / "Archery" / "v_Archery_g01_c02.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return bad


def test_corrupt_video(fake_dataset, workdir, cli):
    """Found by the pre-flight probe (fsar_bench/data/preflight.py): no run folder, no MLflow run."""
    _, root = fake_dataset
    bad = _corrupt(root)
    one_line_error(run_fake(cli, root), f"cannot decode {bad}", "re-download or re-encode", "fsar-bench data check")
    nothing_written(workdir)


def test_corrupt_training_videos_detected_before_training(fake_dataset, workdir, cli):
    _, root = fake_dataset
    for vid in ("v_Diving_g01_c01", "v_Fencing_g01_c02"):
        (root / vid.split("_")[1] / f"{vid}.mp4").write_bytes(b"\x00" * 4096)
    res = cli("run", "protonet", "--dataset", "fake_ucf", "--root", root, "--preset", "tiny", "--way", "2",
              "--shot", "1", "--episodes", "4")
    one_line_error(res, "cannot decode", "v_Diving_g01_c01", "and 1 more of fake_ucf", "fsar-bench data check fake_ucf")
    nothing_written(workdir)


def test_preflight_remembers_good_videos(fake_dataset, workdir):
    """A rerun probes only new or changed files."""
    from fsar_bench.config import load_config
    from fsar_bench.data.cards import get_card
    from fsar_bench.data.preflight import Preflight
    from fsar_bench.data.source import VideoSource

    card, root = fake_dataset
    source = VideoSource.open(get_card("fake_ucf"), load_config(None), root)
    keys = get_card("fake_ucf").split("test").entries
    first = Preflight(source, workdir / "cache")
    assert first.check(keys) == 4
    first.save()
    assert Preflight(source, workdir / "cache").check(keys) == 0
    bad = _corrupt(root)
    with pytest.raises(Exception, match=f"cannot decode {bad}"):
        Preflight(source, workdir / "cache").check(keys)


def test_unsupported_container_in_layout(fake_dataset, workdir, cli):
    _, root = fake_dataset
    (workdir / "bench.yaml").write_text(
        'datasets:\n  fake_ucf: {layout: {kind: video, pattern: "{cls}/{id}.zip"}}\n')
    one_line_error(run_fake(cli, root), "'{cls}/{id}.zip'", ".zip is not a video container", "convert the videos")
    nothing_written(workdir)
    (workdir / "bench.yaml").write_text('datasets:\n  fake_ucf: {layout: {kind: video, pattern: "{cls}/{id}.jpg"}}\n')
    one_line_error(run_fake(cli, root), ".jpg images, not videos", "kind: frames")
    nothing_written(workdir)


@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_unsupported_container_file(tmp_path, monkeypatch, backend):
    """A file in a container the decoders do not read: named as such, not as a corrupt video."""
    monkeypatch.setattr(video_mod, "_BACKEND", backend)
    path = tmp_path / "clip.braw"  # Blackmagic RAW: ffmpeg has no demuxer for it
    path.write_bytes(b"\x00\x00\x00\x14ftypbraw" + bytes(2000))
    with pytest.raises(video_mod.VideoError, match=r"unsupported container \.braw .*convert the videos to mp4"):
        video_mod.read_frames(path, lambda n: [0])
    still = tmp_path / "frame.png"
    still.write_bytes(b"not really a png")
    with pytest.raises(video_mod.VideoError, match=r"\.png image, not a video.*kind: frames"):
        video_mod.read_frames(still, lambda n: [0])


def test_split_names_unknown_class(fake_dataset, workdir, cli):
    folder, root = fake_dataset
    with open(folder / "test.txt", "a") as fh:
        fh.write("Archerry/v_Archery_g02_c01\n")
    one_line_error(run_fake(cli, root), "names class 'Archerry'", "class_map.tsv", "did you mean 'Archery'",
                   "fix the class name in the split list")
    nothing_written(workdir)


# -- weights ---------------------------------------------------------------------------------------------
def test_weights_file_missing(workdir, cli):
    res = cli("run", "protonet", "--dataset", "toy-appearance", "--set", f"weights={workdir / 'nope.pt'}")
    one_line_error(res, "nope.pt does not exist", "pass an existing file")
    nothing_written(workdir)


def test_weights_of_another_architecture(workdir, cli):
    import timm

    other = workdir / "linear.pt"
    torch.save(nn.Linear(3, 4).state_dict(), other)
    res = cli("run", "protonet", "--dataset", "toy-appearance", "--set", f"weights={other}")
    one_line_error(res, "does not fit timm test_resnet", "missing keys", "pass weights saved from a timm test_resnet")
    bigger = workdir / "resnet18.pt"  # same key names, other shapes
    torch.save(timm.create_model("resnet18", num_classes=0).state_dict(), bigger)
    res = cli("run", "protonet", "--dataset", "toy-appearance", "--set", f"weights={bigger}")
    one_line_error(res, "does not fit timm test_resnet", "size mismatch")
    garbage = workdir / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    res = cli("run", "protonet", "--dataset", "toy-appearance", "--set", f"weights={garbage}")
    one_line_error(res, "cannot be read as safetensors", "re-download it")
    nothing_written(workdir)


# -- plugins, config ---------------------------------------------------------------------------------------
def test_plugin_that_fails_to_import(workdir, cli):
    registry._runtime[registry.METHOD_GROUP]["bad_input_missing"] = registry.Entry(
        "bad_input_missing", "fsar_no_such_module:Method", "fsar-plugin-missing 0.1")
    try:
        res = cli("run", "bad_input_missing", "--dataset", "toy-appearance")
    finally:
        registry._runtime[registry.METHOD_GROUP].pop("bad_input_missing")
    one_line_error(res, "failed to import", "ModuleNotFoundError", "fix or uninstall that package")
    nothing_written(workdir)


BAD_YAML = {  # bench.yaml content -> what the error line names
    "list": ("- way: 5\n", "not a mapping of keys to values"),
    "section not a mapping": ("protocol: 5\n", "protocol in bench.yaml is int 5, not a mapping"),
    "string for int": ("protocol: {way: five}\n", "protocol.way in bench.yaml is 'five', not an integer"),
    "negative steps": ("train: {steps: -1}\n", "train.steps in bench.yaml is -1"),
    "float without dot": ("train: {lr: 1e-3}\n", "a float needs a dot"),
    "device": ("device: gpu\n", "device in bench.yaml is 'gpu', not auto, cpu, cuda or cuda:N"),
    "dataset not a mapping": ("datasets: {ucf101: /data/ucf101}\n", "datasets.ucf101 in bench.yaml is not a mapping"),
    "layout key": ("datasets:\n  ucf101: {root: /d, layout: {kind: video, patern: x}}\n", "did you mean 'pattern'"),
    "methods": ("methods: {protonet: [tiny]}\n", "methods.protonet in bench.yaml is not a mapping"),
    "tab indentation": ("protocol:\n\tway: 5\n", "not valid YAML"),
}


@pytest.mark.parametrize("case", sorted(BAD_YAML))
def test_malformed_bench_yaml(case, workdir, cli):
    text, expected = BAD_YAML[case]
    (workdir / "bench.yaml").write_text(text)
    one_line_error(cli("run", "protonet", "--dataset", "toy-appearance"), expected)
    nothing_written(workdir)


def test_missing_config_file(workdir, cli):
    one_line_error(cli("run", "protonet", "--config", "nope.yaml"), "config file nope.yaml does not exist")
    nothing_written(workdir)


def test_shipped_bench_yaml_is_valid():
    from fsar_bench.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "bench.yaml")
    assert cfg["protocol"]["way"] == 5


# -- tracking, results folder, digests ------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tracking_server_unreachable(workdir, cli):
    uri = f"http://127.0.0.1:{_closed_port()}"
    res = cli("run", "protonet", "--dataset", "toy-appearance", "--tracking-uri", uri)  # the flag beats the env
    one_line_error(res, f"MLflow tracking server {uri} is unreachable", "start it")
    assert "training" not in res.err


def test_tracking_uri_invalid(workdir, cli):
    res = cli("run", "protonet", "--dataset", "toy-appearance", "--tracking-uri", "http://host:port")
    one_line_error(res, "is not a valid URL", "http://HOST:PORT")


def test_tracking_server_unreachable_writes_nothing(workdir, cli):
    res = cli("run", "protonet", "--dataset", "toy-appearance", "--tracking-uri", f"http://127.0.0.1:{_closed_port()}")
    assert res.code == 2
    nothing_written(workdir)


def test_results_dir_not_writable(workdir, cli):
    blocker = workdir / "a-file"
    blocker.write_text("not a folder")
    res = cli("run", "protonet", "--dataset", "toy-appearance", "--episodes", "10", "--no-train",
              "--results-dir", blocker / "runs")
    one_line_error(res, str(blocker / "runs"), "--results-dir")


def test_episode_digest_mismatch(workdir, cli, monkeypatch):
    from fsar_bench.episodes import locks

    real = locks.read_lock

    def tampered(card):
        sets = {k: dict(v) for k, v in real(card).items()}
        sets["test-5w1s-1q-10000"]["digest"] = "0" * 64
        return sets

    monkeypatch.setattr(locks, "read_lock", tampered)
    res = cli("run", "protonet", "--dataset", "toy-appearance")
    one_line_error(res, "episode digest mismatch for toy-appearance test-5w1s-1q-10000", "fsar-bench episodes verify")
    nothing_written(workdir)


# -- NaN loss ------------------------------------------------------------------------------------------
class NanAfterTwo(Method):
    """A method whose training loss becomes NaN at the third training episode (index 2)."""

    presets = {"tiny": {"frames": 4, "image_size": 16}, "full": {}}
    train_presets = {"tiny": {"steps": 6, "lr": 1e-2, "train_query": 1, "val_every": 0}}

    def __init__(self, *, frames: int = 8, image_size: int = 224) -> None:
        super().__init__(frames=frames, image_size=image_size)
        self.proj = nn.Linear(3, 8)
        self.feature_dim = 8
        self.calls = 0

    def embed(self, clips, texts=None):
        return self.proj(clips.mean(dim=(-1, -2)))

    def training_loss(self, batch):
        out = super().training_loss(batch)
        self.calls += 1
        if self.calls >= 3:
            out["loss"] = out["loss"] * float("nan")
        return out


def test_nan_loss_stops_with_the_episode_index(workdir, cli):
    registry.register_method("bad_input_nan", NanAfterTwo)
    try:
        res = cli("run", "bad_input_nan", "--dataset", "toy-appearance", "--episodes", "10")
    finally:
        registry._runtime[registry.METHOD_GROUP].pop("bad_input_nan")
    one_line_error(res, "training loss is nan at episode 2", "lower the learning rate")
    written = {p.name for p in (workdir / "fsar-runs").rglob("*")} if (workdir / "fsar-runs").exists() else set()
    assert not written & {"summary.json", "episodes.parquet", "final.pt"}, written  # no results


# -- issue #15: usage errors, numbers, --set values, files and tracking URIs, checked before any work ----
# One line per case: (CLI arguments, a fragment of the error line). `BENCH` is the bench.yaml file name
# and `FILE` a plain file of the working directory (so FILE/x is in an unwritable place, even as root).
USAGE = [  # click's own errors, on typer's vendored click and the standalone one alike
    (["foo"], "no such command 'foo'"),
    (["list", "foo"], "no such command 'foo'; see `fsar-bench list --help`"),
    (["run"], "missing argument"),
    (["run", "protonet", "--way", "x"], "'--way' ('x')"),
    (["run", "protonet", "--way", "2.5"], "'--way' ('2.5')"),
    (["run", "protonet", "--episodes", "1e4"], "write it as a whole number, --episodes 10000"),
    (["run", "protonet", "--lr", "abc"], "'--lr' ('abc')"),
    (["run", "protonet", "--wya", "3"], "--wya"),
    (["episodes", "show", "-d", "toy-motion", "--way", "0"], "'--way'"),
]
NUMBERS = [
    (["--way", "0"], "--way 0 is out of range"),
    (["--query", "0"], "--query 0 is out of range"),
    (["--shot", "-1"], "--shot -1 is out of range"),
    (["--episodes", "0"], "--episodes 0 is out of range"),
    (["--episodes", "-5"], "--episodes -5 is out of range"),
    (["--steps", "-1"], "--steps -1 is out of range"),
    (["--frames", "0"], "--frames 0 is out of range"),
    (["--frames", "-2"], "--frames -2 is out of range"),
    (["--episode-batch", "0"], "--episode-batch 0 is out of range"),
    (["--nproc", "0"], "--nproc 0 is out of range"),
    (["--lr", "-1e-3"], "--lr -0.001 is not a finite number > 0"),
    (["--lr", "0"], "--lr 0.0 is not a finite number > 0"),
    (["--lr", "nan"], "--lr nan is not a finite number > 0"),
    (["--lr", "inf"], "--lr inf is not a finite number > 0"),
    (["--set", "image_size=-4"], "--set image_size=-4 is out of range"),
    (["--set", "frames=0"], "--set frames=0 is out of range"),
    (["--set", "image_size=abc"], "--set image_size='abc' is not an integer"),
    (["--set", "image_size=4.5"], "is not an integer"),
    (["--set", "backbone=3"], "--set backbone=3 is not a string"),
    (["--set", "backbone=.nan"], "is not a finite number"),
    (["--set", "noequals"], "is not key=value"),
    (["--set", "backbon=x"], "unknown hyperparameter 'backbon' of method 'protonet'; did you mean 'backbone'?"),
    (["--shot", "0"], "method 'protonet' has no zero-shot path"),
    (["--preset", "tinyy"], "known presets: "),
]
FILES = [  # (bench.yaml content or a marker, extra args, fragment)
    (b"protocol:\n  way: 5 # caf\xe9\n", [], "is not UTF-8 text"),
    ("FOLDER", [], "config file bench.yaml is a folder"),
    ("UNREADABLE", [], "cannot be read (Permission denied)"),
    (b"train: {lr: .nan}\n", [], "train.lr in bench.yaml is nan"),
    (b"methods: {protonet: {tiny: {image_size: -4}}}\n", [], "image_size: -4 in methods.protonet.tiny in bench.yaml"),
]
TRACKING = [
    ("file:///tmp/mlruns", "file store, which MLflow 3.17 refuses; use a SQLite store, e.g. 'sqlite:////tmp/mlruns/"),
    ("mlruns", "is a file store, which MLflow 3.17 refuses; use a SQLite store, e.g. 'sqlite:///mlruns/mlflow.db'"),
    ("foo://host/x", "has the unknown scheme 'foo:'"),
    ("sqlite:///FILE/mlflow.db", "FILE is a file, not a folder"),
    ("sqlite://", "names no database file"),
    ("sqlite:///.", "points to the folder"),
]
OUTPUTS = [  # commands writing a file: checked before the work that produces it
    (["episodes", "export", "-d", "toy-motion", "--output", "DIR"], "--output DIR is an existing folder"),
    (["episodes", "export", "-d", "toy-motion", "--output", "FILE/x.jsonl"], "FILE is a file, not a folder"),
    (["leaderboard", "-d", "toy-motion", "--output", "FILE/x.md"], "FILE is a file, not a folder"),
    (["leaderboard", "-d", "toy-motion", "--output", "DIR"], "--output DIR is an existing folder"),
    (["leaderboard", "-d", "toy-motion", "--save-runs", "FILE/r.json"], "FILE is a file, not a folder"),
    (["profile", "protonet", "--preset", "tiny", "--output", "FILE/p.json"], "FILE is a file, not a folder"),
    (["sweep", "nway", "--plot-dir", "FILE/plots"], "FILE is a file, not a folder"),
]


def single_error_line(res, fragment: str) -> str:
    """Exit code 2, exactly one non-empty line on stdout + stderr: 'error: <problem>; <fix>', short."""
    assert res.code == 2, (res.code, res.out, res.err)
    lines = [line for line in (res.out + res.err).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and "; " in lines[0] and "Traceback" not in lines[0], lines[0]
    assert fragment in lines[0], (fragment, lines[0])
    assert len(lines[0]) < 700, len(lines[0])
    return lines[0]


def nothing_half_written(workdir: Path) -> None:
    nothing_written(workdir)
    assert not list(workdir.rglob("*.tmp")) and not list(workdir.rglob("mlflow.db")), sorted(workdir.rglob("*"))


def _place(workdir: Path, args: list[str]) -> list[str]:
    (workdir / "FILE").write_text("a plain file\n")
    (workdir / "DIR").mkdir(exist_ok=True)
    return [str(a) for a in args]


@pytest.mark.parametrize("args,fragment", USAGE, ids=[" ".join(a) for a, _ in USAGE])
def test_usage_error_is_one_line(args, fragment, workdir, cli):
    single_error_line(cli(*args), fragment)
    nothing_half_written(workdir)


@pytest.mark.parametrize("args,fragment", NUMBERS, ids=[" ".join(a) for a, _ in NUMBERS])
def test_bad_number_is_refused_before_work(args, fragment, workdir, cli):
    single_error_line(cli("run", "protonet", "--dataset", "toy-appearance", *args), fragment)
    nothing_half_written(workdir)


@pytest.mark.parametrize("content,args,fragment", FILES, ids=[f for _, _, f in FILES])
def test_bad_config_file(content, args, fragment, workdir, cli, monkeypatch):
    config = workdir / "bench.yaml"
    if content == "FOLDER":
        config.mkdir()
    elif content == "UNREADABLE":  # chmod 000 does not stop root: refuse the read itself
        config.write_text("protocol: {way: 5}\n")
        real = Path.read_text

        def refuse(self, *a, **k):
            if self.name == "bench.yaml":
                raise PermissionError(13, "Permission denied", str(self))
            return real(self, *a, **k)

        monkeypatch.setattr(Path, "read_text", refuse)
    else:
        config.write_bytes(content)
    single_error_line(cli("run", "protonet", "--dataset", "toy-appearance", *args), fragment)
    nothing_half_written(workdir)


def test_zero_shot_sweep_point_of_a_method_without_it(workdir, cli):
    (workdir / "bench.yaml").write_text("sweeps:\n  shot: {shots: [0, 1]}\n")
    single_error_line(cli("sweep", "shot", "--method", "protonet"), "remove 0 from sweeps.shot.shots in bench.yaml")
    nothing_half_written(workdir)


@pytest.mark.parametrize("uri,fragment", TRACKING, ids=[u for u, _ in TRACKING])
def test_bad_tracking_uri_before_the_run_folder(uri, fragment, workdir, cli, monkeypatch):
    args = _place(workdir, ["run", "protonet", "--dataset", "toy-appearance", "--tracking-uri", uri])
    single_error_line(cli(*args), fragment)
    nothing_half_written(workdir)
    (workdir / "bench.yaml").write_text(f"tracking_uri: {uri}\n")  # the same from bench.yaml, flag and env unset
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    single_error_line(cli("run", "protonet", "--dataset", "toy-appearance"), "(from tracking_uri in bench.yaml)")
    nothing_half_written(workdir)


@pytest.mark.parametrize("args,fragment", OUTPUTS, ids=[" ".join(a[:2]) + " " + a[-1] for a, _ in OUTPUTS])
def test_unwritable_output_before_work(args, fragment, workdir, cli):
    single_error_line(cli(*_place(workdir, args)), fragment)
    assert not (workdir / "FILE").is_dir() and not list((workdir / "DIR").iterdir())
    nothing_half_written(workdir)


def test_long_echoed_values_are_cut(workdir, cli):
    """A 40,000-character --set value once made a 40,084-character error line."""
    for item in ("image_size=" + "9" * 40_000, "backbone=" + "[" * 40_000, "x" * 40_000 + "=1", "y" * 40_000):
        single_error_line(cli("run", "protonet", "--set", item), "chars")
    nothing_half_written(workdir)


def test_tracking_uri_rule():
    """The pure check: what fsar-bench logs to, and what it refuses (README, docs/configuration.md)."""
    from fsar_bench.errors import FsarError
    from fsar_bench.validate import check_tracking_uri

    for ok in ("http://127.0.0.1:5000", "https://mlflow.example.org", "postgresql+psycopg2://u@h/db",
               "mysql://u@h/db", "databricks", "sqlite:///fsar-runs/not-yet/mlflow.db"):
        check_tracking_uri(ok)
    for bad, words in (("./mlruns", "file store"), ("file:mlruns", "file store"), ("ftp://h/x", "unknown scheme"),
                       ("sqlite:////etc/passwd/mlflow.db", "is a file, not a folder")):
        with pytest.raises(FsarError, match=words):
            check_tracking_uri(bad)


def test_every_preset_passes_the_override_check():
    """The --set type check reads the methods' own annotations: their presets must pass it."""
    from fsar_bench.validate import check_overrides

    for name in registry.list_methods():
        cls = registry.method_class(name)
        for values in cls.presets.values():
            check_overrides(name, cls, values)
    check_overrides("protonet", registry.method_class("protonet"), {"image_size": 48, "weights": None,
                                                                     "pretrained": False, "backbone": "resnet18"})


def test_zero_shot_methods_declare_it():
    """`--shot 0` is allowed by the declared class attribute, not by method name."""
    from fsar_bench.validate import check_zero_shot

    zero = {name for name in registry.list_methods() if getattr(registry.method_class(name), "zero_shot", False)}
    assert {"clip_zeroshot", "ma_fsar"} <= zero and "protonet" not in zero
    check_zero_shot("clip_zeroshot", registry.method_class("clip_zeroshot"), 0)


def test_click_errors_of_either_package(workdir, cli, monkeypatch):
    """Older typers raise the standalone click's exceptions: handled the same way (no class import)."""
    import click

    from fsar_bench import config as config_mod

    def bad(*a, **k):
        raise click.BadParameter("not a good value", param_hint="'--thing'")

    monkeypatch.setattr(config_mod, "load_config", bad)
    single_error_line(cli("run", "protonet"), "not a good value")
    monkeypatch.setattr(config_mod, "load_config", lambda *a, **k: (_ for _ in ()).throw(click.Abort()))
    res = cli("run", "protonet")
    assert res.code == 130 and "interrupted; re-run the same command to resume" in res.err


def test_ctrl_c_prints_how_to_resume(workdir, cli, monkeypatch):
    from fsar_bench import config as config_mod

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(config_mod, "load_config", interrupt)
    res = cli("run", "protonet", "--dataset", "toy-appearance")
    assert res.code == 130, (res.code, res.err)
    assert res.err.strip() == "interrupted; re-run the same command to resume"


def test_no_arguments_prints_the_help(cli):
    res = cli()
    assert res.code in (0, 2) and "Usage: fsar-bench" in res.out and "Traceback" not in res.err


# The vendored-click problem shows only through the console script: one real process per class of error.
def _entry_point() -> list[str]:
    script = Path(sys.executable).with_name("fsar-bench")
    return [str(script)] if script.exists() else [sys.executable, "-m", "fsar_bench"]


_INTERRUPT = ("import signal, sys; from fsar_bench import config; "
              "config.load_config = lambda *a, **k: signal.raise_signal(signal.SIGINT); "
              "from fsar_bench.cli import main; main(sys.argv[1:])")
PROCESSES = [  # (argv after the program, bench.yaml or None, exit code, fragment)
    (["foo"], None, 2, "error: no such command 'foo'"),
    (["run", "protonet", "--episodes", "1e4"], None, 2, "--episodes 10000"),
    (["run", "protonet", "--nproc", "0"], None, 2, "--nproc 0 is out of range"),
    (["run", "protonet"], b"\xff\xfe", 2, "is not UTF-8 text"),
    (["run", "protonet", "--tracking-uri", "file:///tmp/mlruns"], None, 2, "sqlite:////tmp/mlruns/mlflow.db"),
    (["episodes", "export", "-d", "toy-motion", "-o", "DIR"], None, 2, "is an existing folder"),
    (["INTERRUPT", "run", "protonet"], None, 130, "interrupted; re-run the same command to resume"),
]


@pytest.mark.parametrize("args,bench,code,fragment", PROCESSES, ids=[" ".join(a) for a, *_ in PROCESSES])
def test_real_entry_point(args, bench, code, fragment, tmp_path):
    import subprocess

    (tmp_path / "DIR").mkdir()
    if bench is not None:
        (tmp_path / "bench.yaml").write_bytes(bench)
    cmd = [sys.executable, "-c", _INTERRUPT, *args[1:]] if args[0] == "INTERRUPT" else [*_entry_point(), *args]
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "FSAR_BENCH_CONFIG")}
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert proc.returncode == code and len(lines) == 1 and fragment in lines[0], (proc.returncode, lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["DIR", *(["bench.yaml"] if bench else [])])
