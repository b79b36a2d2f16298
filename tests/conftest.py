"""Shared fixtures: offline hubs, one generated toy dataset per test session, a CLI runner, and one
full-preset forward pass per method per session."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # a hub look-up would otherwise hang ~47 s before failing
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from dataclasses import dataclass
from pathlib import Path

import pytest


_GENERATE = "import sys; from pathlib import Path; from fsar_bench.data import toy; " \
            "from fsar_bench.data.cards import get_card; toy.generate(get_card(sys.argv[1]), Path(sys.argv[2]))"


@pytest.fixture(scope="session")
def toy_data_root(tmp_path_factory, request) -> Path:
    """Both toy datasets, generated once per session (through the same code a run uses).

    Generating one takes ~20 s of one core: toy-appearance is generated in a child process while
    this one generates toy-motion (a no-op for an already prepared FSAR_TEST_DATA)."""
    import subprocess
    import sys

    from fsar_bench.data import toy
    from fsar_bench.data.cards import get_card

    root = Path(os.environ.get("FSAR_TEST_DATA") or tmp_path_factory.mktemp("toy-data"))
    child = subprocess.Popen([sys.executable, "-c", _GENERATE, "toy-appearance", str(root / "toy-appearance")],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        toy.generate(get_card("toy-motion"), root / "toy-motion")
    finally:
        out, _ = child.communicate()
    assert child.returncode == 0, f"generating toy-appearance failed:\n{out}"
    if any(item.nodeid.endswith(_PREPARE_AGAIN_TEST) for item in request.session.items):
        _start_prepare_again(tmp_path_factory)
    return root


# tests/test_toy.py checks that a second `fsar-bench data prepare toy-motion` writes the session's bytes.
# That generation (~20 s of one core) runs in a background process started as soon as the session's
# data exist, at low priority: the suite runs tiny models on one thread, so it uses the idle core.
_PREPARE_AGAIN_TEST = "test_toy.py::test_prepare_twice_gives_byte_identical_trees"
_prepare_again: dict = {}


def _start_prepare_again(tmp_path_factory) -> None:
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("prepare-again")
    env = {k: v for k, v in os.environ.items() if k != "FSAR_BENCH_CONFIG"}
    logs = [open(folder / name, "w") for name in ("out.txt", "err.txt")]  # files: a full pipe would block it
    proc = subprocess.Popen([sys.executable, "-m", "fsar_bench", "data", "prepare", "toy-motion",
                             "--root", str(folder / "B")], cwd=folder, env=env, stdout=logs[0], stderr=logs[1],
                            preexec_fn=(lambda: os.nice(10)) if os.name == "posix" else None)
    _prepare_again.update(proc=proc, folder=folder, logs=logs)


def pytest_sessionfinish(session, exitstatus):
    """A session stopped early (-x, Ctrl-C) does not leave the background generation running."""
    proc = _prepare_again.get("proc")
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def toy_motion_prepared_again(toy_data_root, tmp_path_factory):
    """(exit code, stderr, root) of `fsar-bench data prepare toy-motion --root ROOT` run as its own
    process: started in the background by `toy_data_root` when the session will need it, else now."""
    if not _prepare_again:
        _start_prepare_again(tmp_path_factory)
    proc, folder = _prepare_again["proc"], _prepare_again["folder"]
    try:
        proc.wait(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for log in _prepare_again["logs"]:
            log.close()
    return proc.returncode, (folder / "err.txt").read_text(), folder / "B"


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory) -> str:
    """One MLflow store per session (creating a sqlite store costs ~10 s)."""
    return f"sqlite:///{(tmp_path_factory.mktemp('mlflow') / 'mlflow.db').as_posix()}"


@pytest.fixture()
def workdir(tmp_path, monkeypatch, toy_data_root, tracking_uri) -> Path:
    """A clean working directory whose runs use the session's toy data and MLflow store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FSAR_BENCH_DATA", str(toy_data_root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    monkeypatch.delenv("FSAR_BENCH_CONFIG", raising=False)
    return tmp_path


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture()
def cli(capsys):
    """Run `fsar-bench ARGS` in-process through the real entry point (exit codes included)."""
    from fsar_bench.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def full_forward():
    """`full_forward(name)`: the outputs of one full-preset (paper-size, random-init) 5-way 1-shot
    forward pass of method `name`, computed at most once per session (tests/full_presets.py)."""
    from full_presets import full_forward as get

    return get


@pytest.fixture()
def one_thread(request):
    """Tiny models: two OpenMP threads on two shared, busy cores are ~10x slower than one; restore
    afterwards. The full-size (slow) tests keep every thread."""
    import torch

    if request.node.get_closest_marker("slow"):
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
