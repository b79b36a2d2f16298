"""Sweeps: one parent run, a child per point, re-scoring without retraining, and a plot."""

from __future__ import annotations

import mlflow

from fsar_bench.config import load_config


def test_nway_sweep_parent_children_and_plot(workdir, cli, tracking_uri):
    (workdir / "bench.yaml").write_text("sweeps:\n  nway: {ways: [4, 5, 6], shot: 1}\ntrain: {val_episodes: 10}\n")
    res = cli("sweep", "nway", "--method", "protonet", "--dataset", "toy-motion", "--episodes", "10",
              "--steps", "2")
    assert res.code == 0, res.err
    client = mlflow.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(load_config()["experiment"])
    parents = client.search_runs([exp.experiment_id], "tags.`fsar.sweep` = 'nway'")
    parent = parents[0]
    children = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(int(c.data.params["way"]) for c in children) == [4, 5, 6]
    trained = [c for c in children if c.data.params["trained"] == "True"]
    assert all(c.info.status == "FINISHED" for c in children)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "nway-protonet-toy-motion.png" in artifacts
    assert (workdir / "fsar-runs" / "sweeps" / "nway-protonet-toy-motion.png").stat().st_size > 1000
    assert len(trained) == 1  # the first point trained; the other points re-scored its weights
    assert all(c.data.params["init_from"].endswith("final.pt") for c in children if c not in trained)
    assert "re-scored" in res.out
