"""`fsar-bench run --precision / --num-workers` (issue #19): validated like `eval`'s, recorded, a
reduced-precision run listed apart by the leaderboard, and the number of decoding workers changes no
prediction (so it stays out of the run key)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from fsar_bench.results.record import RunRecord

TINY = ("run", "protonet", "--dataset", "toy-appearance", "--steps", "2", "--episodes", "8", "--json")


def _run(cli, *args: str) -> tuple[RunRecord, Path]:
    res = cli(*TINY, *args)
    assert res.code == 0, res.err
    run_dir = Path(json.loads(res.out)["run_dir"])
    return RunRecord.from_summary(json.loads((run_dir / "summary.json").read_text())), run_dir


def test_bad_precision_and_workers_are_one_line_errors(cli, workdir):
    for args, text in ((["--precision", "fp64"], "--precision fp64 is not one of fp32, bf16, fp16"),
                       (["--num-workers", "-1"], "--num-workers -1 is negative"),
                       (["--precision", "bf16"], "autocasts on CUDA")):  # the test machine has no GPU
        res = cli(*TINY, *args)
        assert res.code == 2 and text in res.err and len(res.err.strip().splitlines()) == 1, res.err
    assert not (workdir / "fsar-runs").exists() or not any((workdir / "fsar-runs").glob("protonet-*"))


def test_bf16_run_is_recorded_and_listed_apart(cli, workdir, monkeypatch, one_thread, tracking_uri):
    """Without a GPU the CUDA check is bypassed (autocast is then a no-op): what is tested is that the
    flag reaches the record, MLflow and the run key, and that the leaderboard lists the run apart."""
    import mlflow

    from fsar_bench.cli import run_cmd
    from fsar_bench.leaderboard.reproduced import classify

    fp32, _ = _run(cli, "--no-train")  # precision is the evaluation's: no training needed here
    monkeypatch.setattr(run_cmd, "check_precision_device", lambda precision, device: None)
    bf16, _ = _run(cli, "--no-train", "--precision", "bf16")
    assert (fp32.identity.precision, bf16.identity.precision) == ("fp32", "bf16")
    assert bf16.identity.spec["precision"] == "bf16" and bf16.identity.group_key != fp32.identity.group_key
    assert mlflow.MlflowClient(tracking_uri).get_run(bf16.mlflow_run_id).data.params["precision"] == "bf16"
    reasons = {u.group.run.identity.precision: u.reason for u in classify([fp32, bf16], "toy-appearance",
                                                                           "5w1s").unranked}
    assert "bf16 arithmetic" in reasons["bf16"] and "bf16" not in reasons["fp32"]


def test_num_workers_change_no_prediction(cli, workdir, one_thread):
    """0 workers (decode in this process) and 1 worker process give the same predictions and logits
    (mirrors tests/test_embed_loader.py through `run`, training included); each is recorded."""
    runs = {n: _run(cli, "--num-workers", str(n), "--results-dir", str(workdir / f"runs-{n}")) for n in (0, 1)}
    (rec0, dir0), (rec1, dir1) = runs[0], runs[1]
    assert (rec0.environment.num_workers, rec1.environment.num_workers) == (0, 1)
    assert rec0.identity.run_key == rec1.identity.run_key  # not keyed: the same run in two folders
    a, b = pd.read_parquet(dir0 / "episodes.parquet"), pd.read_parquet(dir1 / "episodes.parquet")
    assert len(a) == 8 and a["preds"].map(list).tolist() == b["preds"].map(list).tolist()
    assert a["logits"].map(lambda x: [list(r) for r in x]).tolist() == \
        b["logits"].map(lambda x: [list(r) for r in x]).tolist()
