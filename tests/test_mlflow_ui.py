"""What the MLflow UI shows: the classic experiment view, inputs with digests, previewable tables,
static scalars as params, and the finished run of a key (no duplicate on re-run)."""

from __future__ import annotations

import mlflow
import pandas as pd

from fsar_bench.tracking import EXPERIMENT_KIND, Tracker


def test_experiment_opens_in_the_classic_view_and_tables_inputs(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    t = Tracker(uri, "exp", tmp_path / "art")
    client = mlflow.MlflowClient(uri)
    assert client.get_experiment(t.experiment_id).tags["mlflow.experimentKind"] == \
        EXPERIMENT_KIND["mlflow.experimentKind"] == "custom_model_development"
    run_id = t.start("r", {"x": 1}, {"fsar.run_key": "k1"})
    assert t.finished_run("k1") is None
    t.log_dataset_input("toy-motion", "abc123", "/data/toy", "test")
    t.log_table(pd.DataFrame({"class": ["a", "b"], "accuracy": [10.0, 90.0]}), "per_class.json")
    t.end("FINISHED")
    run = client.get_run(run_id)
    (ds,) = run.inputs.dataset_inputs
    assert ds.dataset.name == "toy-motion" and ds.dataset.digest == "abc123"
    assert {a.path for a in client.list_artifacts(run_id)} == {"per_class.json"}
    assert t.finished_run("k1") == run_id and t.finished_run("other") is None


def test_an_older_experiment_gets_the_kind_tag(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    exp_id = client.create_experiment("old")
    Tracker(uri, "old")
    assert client.get_experiment(exp_id).tags["mlflow.experimentKind"] == "custom_model_development"


def _view_state(client, exp_id):
    """The saved "fsar-bench leaderboard" view of an experiment, as the MLflow 3.17 UI parses it."""
    import json

    from fsar_bench.tracking import LEADERBOARD_VIEW

    envelope = json.loads(client.get_experiment(exp_id).tags[f"mlflow.sharedViewState.{LEADERBOARD_VIEW}"])
    assert isinstance(envelope["name"], str) and isinstance(envelope["createdAt"], int)
    assert isinstance(envelope["state"], str)  # the UI requires the state as a JSON string
    return json.loads(envelope["state"])


def test_the_leaderboard_view_shows_logged_metrics_and_params_sorted_by_accuracy(tmp_path):
    import re

    from fsar_bench.results.record import Identity, RunRecord

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    t = Tracker(uri, "exp", tmp_path / "art")
    state = _view_state(mlflow.MlflowClient(uri), t.experiment_id)
    assert state["orderByKey"] == "metrics.`accuracy`" and state["orderByAsc"] is False
    record = RunRecord(Identity())
    logged = {"metrics": set(record.mlflow_metrics()), "params": set(record.mlflow_params())}
    columns = [re.fullmatch(r"(metrics|params)\.`(\w+)`", c).groups() for c in state["selectedColumns"]]
    assert [name for kind, name in columns if kind == "metrics"] == ["accuracy", "ci95"]
    assert all(name in logged[kind] for kind, name in columns)  # a renamed param would show an empty column
    assert {"method", "matcher", "way", "shot"} <= {name for kind, name in columns if kind == "params"}


def test_an_older_experiment_gets_the_view_and_a_changed_view_is_kept(tmp_path):
    from fsar_bench.tracking import LEADERBOARD_VIEW

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    exp_id = client.create_experiment("old", tags=EXPERIMENT_KIND)
    Tracker(uri, "old")
    assert _view_state(client, exp_id)["selectedColumns"][0] == "metrics.`accuracy`"
    key = f"mlflow.sharedViewState.{LEADERBOARD_VIEW}"
    client.set_experiment_tag(exp_id, key, "edited in the UI")
    Tracker(uri, "old")
    assert client.get_experiment(exp_id).tags[key] == "edited in the UI"


def test_readme_gives_the_address_of_the_view():
    from pathlib import Path

    from fsar_bench.tracking import RUNS_VIEW_QUERY

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"/runs?{RUNS_VIEW_QUERY}" in readme


def test_metrics_are_logged_rounded_and_the_exact_values_stay_in_the_summary():
    import math

    from fsar_bench.results.record import Identity, Results, RunRecord, rounded_metrics

    rec = RunRecord(Identity(episodes=30), results=Results(accuracy=50.349999999999994, ci95=3.260551126457183,
                                                           accuracy_std=9.123456789, train_seconds=12.3456789))
    logged = rec.mlflow_metrics()
    assert logged["accuracy"] == 50.35 and logged["ci95"] == 3.2606 and logged["accuracy_std"] == 9.1235
    assert logged["train_seconds"] == 12.346 and logged["episodes"] == 30
    assert rec.to_summary()["ci95"] == 3.260551126457183  # summary.json keeps the exact value
    assert math.isnan(rounded_metrics({"accuracy": math.nan})["accuracy"])


def test_a_group_parent_logs_ci95_and_the_params_its_replicates_share(tmp_path):
    """The group parent's ci95 is the hierarchical half-width; its params are the replicates' shared
    identity, never a seed or run key (a parent read back as a run would be ranked)."""
    import numpy as np

    from fsar_bench.engine.replicates import group_metrics
    from fsar_bench.results.groups import summarize_group
    from fsar_bench.results.record import Identity, RunRecord, group_mlflow_params

    reps = [RunRecord(Identity(method="m", dataset="d", matcher="proto", preset="tiny", frames=4, train_seed=s,
                               run_key=f"k{s}", group_key="g", weights_source=f"file:{s}")) for s in ("0", "0.1")]
    params = group_mlflow_params(reps)
    assert {k: params[k] for k in ("matcher", "way", "shot", "preset", "frames", "dataset", "group_key")} == \
        {"matcher": "proto", "way": 5, "shot": 1, "preset": "tiny", "frames": 4, "dataset": "d", "group_key": "g"}
    assert not {"run_key", "train_seed", "weights_source", "spec"} & set(params)
    rng = np.random.default_rng(0)
    summary = summarize_group(rng.integers(0, 2, size=(3, 40)).astype(float) * 0.5 + rng.random((3, 40)) * 0.5)
    metrics = group_metrics(summary)
    lo, hi = summary.hierarchical_ci
    assert metrics["ci95"] == round((hi - lo) / 2, 4) and metrics["ci95"] != metrics["episode_ci95"]
    assert all(v == round(v, 4) for v in metrics.values())
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    t = Tracker(uri, "exp")
    run_id = t.start("g (group)", {"group_key": "g", "method": "m", "dataset": "d"}, {"fsar.group": "g"})
    t.log_new_params(params)
    t.log_new_params({**params, "matcher": "other"})  # a reopened parent keeps what it has (write-once)
    run = mlflow.MlflowClient(uri).get_run(run_id)
    assert run.data.params["matcher"] == "proto" and run.data.params["way"] == "5"
    assert RunRecord.from_mlflow(run) is None


def test_the_printed_line_opens_the_view_of_the_experiment(tmp_path):
    from fsar_bench.tracking import RUNS_VIEW_QUERY, ui_hint

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    Tracker(uri, "other")
    exp_id = Tracker(uri, "fsar-bench").experiment_id
    line = ui_hint(uri, "fsar-bench")
    assert line and "\n" not in line and f"mlflow ui --backend-store-uri {uri}" in line
    assert f"http://127.0.0.1:5000/#/experiments/{exp_id}/runs?{RUNS_VIEW_QUERY}" in line and exp_id != "1"
    assert ui_hint(uri, "missing") is None
    assert ui_hint("http://mlflow.example:5000", "fsar-bench") is None  # a server has its own address
