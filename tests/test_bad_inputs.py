"""The bad-input matrix of the CLI (cases beyond tests/test_cli_errors.py and tests/test_data_check.py).

Every case: exit code 2, one line on stderr starting "error:" that names the problem and the fix,
and no run folder written. Cases the engine cannot honour yet are xfail with the reason.
"""

from __future__ import annotations

import shutil
import socket
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
