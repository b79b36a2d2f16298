"""End to end: a ProtoNet run on a toy dataset, its MLflow record, and resuming."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from fsar_bench.config import load_config
from fsar_bench.engine.runner import RunSpec, execute


@pytest.fixture(scope="module")
def module_workdir(tmp_path_factory, toy_data_root, tracking_uri):
    """`workdir` for the whole module: both tests read the same run."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("run")
        mp.chdir(path)
        mp.setenv("FSAR_BENCH_DATA", str(toy_data_root))
        mp.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        mp.delenv("FSAR_BENCH_CONFIG", raising=False)
        yield path


@pytest.fixture(scope="module")
def quick_run(module_workdir):
    """One short training run, shared by the tests of this module (it is only read, or resumed)."""
    spec = RunSpec(method="protonet", dataset="toy-appearance", episodes=40, train={"steps": 4, "val_every": 2,
                                                                                      "val_episodes": 10})
    return spec, execute(spec, load_config(), log=lambda s: None)


def test_run_writes_results_and_mlflow(quick_run):
    spec, result = quick_run
    s = result.summary
    assert s["episodes"] == 40
    assert s["weights_source"] == "random-init" and s["canonical"] is False  # 40 episodes is not a locked set
    assert s["train_steps"] == 4
    df = pd.read_parquet(result.run_dir / "episodes.parquet")
    assert list(df["episode"]) == list(range(40))
    assert all(len(lg) == 5 and len(lg[0]) == 5 for lg in df["logits"])  # [Q, way] per episode
    assert json.loads((result.run_dir / "summary.json").read_text())["accuracy"] == s["accuracy"]
    # accuracy and CI recomputed from the per-episode rows: each query's prediction is the argmax of its
    # logits, an episode's accuracy the fraction of its queries predicted right, the run's accuracy the mean
    # over episodes (%), and the CI half-width 1.96 * sample std / sqrt(n) (docs/results.md)
    per_episode = []
    for labels, preds, logits in zip(df["labels"], df["preds"], df["logits"]):
        assert [max(range(len(row)), key=lambda c: row[c]) for row in logits] == list(preds)
        per_episode.append(100.0 * sum(int(p == y) for p, y in zip(preds, labels)) / len(labels))
    assert [a * 100 for a in df["accuracy"]] == pytest.approx(per_episode)
    n = len(per_episode)
    mean = sum(per_episode) / n
    std = math.sqrt(sum((a - mean) ** 2 for a in per_episode) / (n - 1))
    assert s["accuracy"] == pytest.approx(mean, rel=1e-9)
    assert s["accuracy_std"] == pytest.approx(std, rel=1e-9)
    assert s["ci95"] == pytest.approx(1.96 * std / math.sqrt(n), rel=1e-9)
    assert 0 < std  # 40 episodes of a barely trained model do not all score the same

    import mlflow

    client = mlflow.MlflowClient(load_config().tracking_uri)
    run = client.get_run(result.mlflow_run_id)
    for key in ("method", "matcher", "backbone", "preset", "dataset", "way", "shot", "query", "frames",
                "episode_seed", "train_seed", "weights_source", "fsar_bench_version", "git_commit",
                "episode_digest"):
        assert key in run.data.params, key
    assert run.data.params["weights_source"] == "random-init"
    assert {"accuracy", "ci95", "episodes", "train_seconds"} <= set(run.data.metrics)
    # MLflow shows the metrics rounded to 4 decimals (docs/results.md §1); summary.json keeps them exact
    assert run.data.metrics["accuracy"] == round(mean, 4) and run.data.metrics["ci95"] == round(s["ci95"], 4)
    assert run.info.status == "FINISHED"
    names = {a.path for a in client.list_artifacts(result.mlflow_run_id)}
    assert {"episodes.parquet", "summary.json"} <= names


def test_rerun_resumes_instead_of_recomputing(quick_run, module_workdir):
    spec, first = quick_run
    second = execute(spec, load_config(), log=lambda s: None)
    assert second.run_dir == first.run_dir
    assert second.summary["accuracy"] == first.summary["accuracy"]
    assert (first.run_dir / "final.pt").exists() and not (first.run_dir / "checkpoint.pt").exists()


def test_one_record_in_summary_json_and_mlflow(quick_run):
    """summary.json (format 2) and the MLflow run are two renderings of one RunRecord: both read back to
    the same identity, results and efficiency (the profile of the trained model is in both)."""
    import mlflow

    from fsar_bench.results.record import RunRecord
    from fsar_bench.results.runs import load_record

    _, result = quick_run
    rec, df = load_record(result.run_dir)  # the folder's latest run (the resume test may have re-run it)
    assert rec.identity == result.record.identity and len(df) == 40
    assert rec.results.accuracy == result.record.results.accuracy
    assert json.loads((result.run_dir / "summary.json").read_text())["format"] == 2
    run = mlflow.MlflowClient(load_config().tracking_uri).get_run(rec.mlflow_run_id)
    back = RunRecord.from_mlflow(run)
    for name in ("method", "dataset", "setting", "matcher", "preset", "episode_digest", "run_key", "train_steps",
                 "weights", "data_version", "canonical"):
        assert getattr(back.identity, name) == getattr(rec.identity, name), name
    assert back.results.accuracy == pytest.approx(rec.results.accuracy)
    assert rec.efficiency.flops_per_video > 0
    assert back.efficiency.flops_per_video == pytest.approx(rec.efficiency.flops_per_video)
    assert back.environment.hardware_key == rec.environment.hardware_key != ""
