"""The local MLflow store: runs started together in a fresh results folder share it cleanly."""

from __future__ import annotations

import subprocess
import sys

import mlflow

SCRIPT = """
import sys
from pathlib import Path
from fsar_bench.tracking import Tracker
t = Tracker(sys.argv[1], "fsar-bench", Path(sys.argv[2]))
run = t.start(sys.argv[3], {"x": 1}, {})
t.end("FINISHED")
"""


def test_concurrent_first_runs_share_a_fresh_sqlite_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, uri, str(tmp_path / "art"), f"run{i}"],
                              stderr=subprocess.PIPE, text=True) for i in range(3)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    client = mlflow.MlflowClient(uri)
    exps = [e for e in client.search_experiments() if e.name == "fsar-bench"]
    assert len(exps) == 1
    runs = client.search_runs([exps[0].experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["run0", "run1", "run2"]
    assert {r.info.status for r in runs} == {"FINISHED"}
