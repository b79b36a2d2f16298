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
