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
