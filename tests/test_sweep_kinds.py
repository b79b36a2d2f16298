"""End-to-end sweeps of every kind on toy data (small): distinct point names, figures (PDF + PNG),
and a two-method figure from two sweeps (`fsar-bench plot`)."""

from __future__ import annotations

import json

import mlflow
import pytest

from fsar_bench.config import load_config

SMALL = ("--episodes", "20", "--steps", "2")


def _children(tracking_uri: str, kind: str, name: str) -> list:
    client = mlflow.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(load_config()["experiment"])
    parent = client.search_runs([exp.experiment_id], f"tags.`fsar.sweep` = '{kind}' and "
                                f"attributes.run_name = '{name}'", order_by=["attributes.start_time DESC"])[0]
    return client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")


def _yaml(workdir, text: str) -> None:
    (workdir / "bench.yaml").write_text(text)


def test_shot_sweep(workdir, cli, tracking_uri):
    _yaml(workdir, "sweeps:\n  shot: {shots: [1, 2], way: 5}\n")
    res = cli("sweep", "shot", "--method", "protonet", "--dataset", "toy-motion", *SMALL)
    assert res.code == 0, res.err
    children = _children(tracking_uri, "shot", "sweep-shot-protonet-toy-motion")
    assert sorted(c.data.params["shot"] for c in children) == ["1", "2"]
    assert sorted(c.info.run_name for c in children) == ["protonet-toy-motion-5w1s", "protonet-toy-motion-5w2s"]
    for ext in ("pdf", "png"):
        assert (workdir / "fsar-runs" / "sweeps" / f"shot-protonet-toy-motion.{ext}").stat().st_size > 1000


def test_frames_sweep_points_have_distinct_names(workdir, cli, tracking_uri):
    _yaml(workdir, "sweeps:\n  frames: {frames: [4, 6]}\n")
    res = cli("sweep", "frames", "--method", "protonet", "--dataset", "toy-motion", *SMALL)
    assert res.code == 0, res.err
    names = sorted(c.info.run_name for c in _children(tracking_uri, "frames", "sweep-frames-protonet-toy-motion"))
    assert names == ["protonet-toy-motion-5w1s-4f", "protonet-toy-motion-5w1s-6f"]
    folders = sorted(p.name.rsplit("-", 1)[0] for p in (workdir / "fsar-runs").glob("protonet-*"))
    assert folders == names
    from fsar_bench.leaderboard.reproduced import classify
    from fsar_bench.results.record import RunRecord

    records = [RunRecord.from_summary(json.loads((d / "summary.json").read_text()))
               for d in sorted((workdir / "fsar-runs").glob("protonet-*"))]
    sec = classify(records, "toy-motion", "5w1s")  # trained sweep points: listed apart with their sweep
    assert not sec.random_init and not sec.pretrained
    reasons = sorted(r.reason for r in sec.unranked)
    for reason, frames in zip(reasons, ("4", "6")):
        assert f"point of sweep frames (frames = {frames}) sweep-frames-protonet-toy-motion: run it with " \
               "fsar-bench run to rank it" in reason


def test_cross_dataset_sweep(workdir, cli, tracking_uri):
    _yaml(workdir, "sweeps:\n  cross-dataset: {pairs: [[toy-appearance, toy-motion]]}\n")
    res = cli("sweep", "cross-dataset", "--method", "protonet", *SMALL)
    assert res.code == 0, res.err
    (child,) = _children(tracking_uri, "cross-dataset", "sweep-cross-dataset-protonet-toy-motion")
    assert child.data.params["train_dataset"] == "toy-appearance" and child.data.params["dataset"] == "toy-motion"
    assert child.info.run_name == "protonet-toy-motion-5w1s-from-toy-appearance"
    assert (workdir / "fsar-runs" / "sweeps" / "cross-dataset-protonet-toy-motion.pdf").exists()


def test_efficiency_sweep(workdir, cli, tracking_uri):
    _yaml(workdir, "sweeps:\n  efficiency: {methods: [protonet]}\n")
    res = cli("sweep", "efficiency", "--dataset", "toy-motion", *SMALL)
    assert res.code == 0, res.err
    table = json.loads((workdir / "fsar-runs" / "sweeps" / "efficiency-protonet-toy-motion.json").read_text())
    assert table[0]["point"] == "protonet" and table[0]["flops_per_video"] > 0 and table[0]["params_total"] > 0
    (child,) = _children(tracking_uri, "efficiency", "sweep-efficiency-protonet-toy-motion")
    assert float(child.data.params["flops_per_video"]) == pytest.approx(table[0]["flops_per_video"], rel=1e-6)
    assert "flops_per_video" not in child.data.metrics  # a static scalar: a param, not a bar chart


def test_two_matcher_sweeps_keep_both_figures_and_plot_together(workdir, cli):
    _yaml(workdir, "sweeps:\n  nway: {ways: [3, 5], shot: 1}\n")
    for extra in ((), ("--matcher", "otam")):
        res = cli("sweep", "nway", "--method", "protonet", "--dataset", "toy-motion", *SMALL, *extra)
        assert res.code == 0, res.err
    sweeps = workdir / "fsar-runs" / "sweeps"
    tables = [sweeps / "nway-protonet-toy-motion.json", sweeps / "nway-protonet+otam-toy-motion.json"]
    assert all(t.exists() for t in tables)
    res = cli("plot", *map(str, tables), "-o", str(workdir / "fig" / "nway"))
    assert res.code == 0, res.err
    assert (workdir / "fig" / "nway.pdf").read_bytes()[:4] == b"%PDF"
    assert (workdir / "fig" / "nway.png").stat().st_size > 1000
