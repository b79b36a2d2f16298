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
    for test in _BACKGROUND_CLI:  # from here on the suite runs tiny single-threaded models
        if _XDIST:  # two workers already use both cores (and each would start its own copy)
            break
        if test not in _background and any(item.nodeid.endswith(test) for item in request.session.items):
            _start_background(test)
    return root


# Two CLI checks take ~20 s of one core each and read nothing the other tests write: a second
# `data prepare toy-motion` (tests/test_toy.py compares its bytes with the session's) and `episodes
# verify` of every card (one worker). When the session selects their tests, they start as background
# processes once the session's toy data exist (`toy_data_root`; before it, the full-size forward passes
# use both cores) and run on the core the single-threaded suite leaves idle; the tests then wait for
# them (a test run alone starts its process then, as before). Not niced: on a busy machine a niced
# process starves and its test waits longer than the foreground run took.
_BACKGROUND_CLI = {
    "test_toy.py::test_prepare_twice_gives_byte_identical_trees":
        ("data", "prepare", "toy-motion", "--root", "{folder}/B"),
    "test_episodes.py::test_verify_all_datasets": ("episodes", "verify", "--jobs", "1"),
}
_background: dict[str, dict] = {}
_XDIST = "PYTEST_XDIST_WORKER" in os.environ  # a pytest-xdist worker (pyproject addopts: -n auto)


def _start_background(test: str) -> None:
    import subprocess
    import sys
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="fsar-background-"))
    env = {k: v for k, v in os.environ.items() if k != "FSAR_BENCH_CONFIG"}
    logs = [open(folder / name, "w") for name in ("out.txt", "err.txt")]  # files: a full pipe would block it
    args = [a.format(folder=folder) for a in _BACKGROUND_CLI[test]]
    proc = subprocess.Popen([sys.executable, "-m", "fsar_bench", *args], cwd=folder, env=env, stdout=logs[0],
                            stderr=logs[1])
    _background[test] = {"proc": proc, "folder": folder, "logs": logs}


def pytest_sessionfinish(session, exitstatus):
    """Stop what a session stopped early (-x, Ctrl-C) left running; remove the folders."""
    import shutil

    for job in _background.values():
        if job["proc"].poll() is None:
            job["proc"].kill()
            job["proc"].wait()
        for log in job["logs"]:
            log.close()
        shutil.rmtree(job["folder"], ignore_errors=True)


@dataclass
class BackgroundResult:
    code: int
    out: str
    err: str
    folder: Path


@pytest.fixture()
def background_cli(request) -> BackgroundResult:
    """The finished `python -m fsar_bench ...` process of this test (`_BACKGROUND_CLI`)."""
    (test,) = [t for t in _BACKGROUND_CLI if request.node.nodeid.endswith(t)]
    if test not in _background:
        _start_background(test)
    job = _background[test]
    try:
        job["proc"].wait(timeout=900)
    finally:
        if job["proc"].poll() is None:
            job["proc"].kill()
            job["proc"].wait()
        for log in job["logs"]:
            log.flush()
    return BackgroundResult(job["proc"].returncode, (job["folder"] / "out.txt").read_text(),
                            (job["folder"] / "err.txt").read_text(), job["folder"])


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

    if request.node.get_closest_marker("slow") and not _XDIST:  # under xdist the other worker has the other core
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
