"""Shared fixtures: offline hubs, one generated toy dataset per test session, a CLI runner."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # a hub look-up would otherwise hang ~47 s before failing
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def toy_data_root(tmp_path_factory) -> Path:
    """Both toy datasets, generated once per session (through the same code a run uses)."""
    from fsar_bench.data import toy
    from fsar_bench.data.cards import get_card

    root = Path(os.environ.get("FSAR_TEST_DATA") or tmp_path_factory.mktemp("toy-data"))
    for name in ("toy-motion", "toy-appearance"):
        toy.generate(get_card(name), root / name)
    return root


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
