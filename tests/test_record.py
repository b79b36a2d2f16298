"""The run record: the one writer and reader of summary.json, MLflow params/tags/metrics and snapshot rows."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from fsar_bench.results.record import (FORMAT, Efficiency, Environment, Identity, Results, RunRecord, check_docs,
                                       schema_markdown)

ROOT = Path(__file__).resolve().parents[1]

# a summary.json as the runner wrote it before the record existed (format 1: no "format" key)
FORMAT1 = {
    "accuracy": 61.5, "accuracy_std": 30.1, "ci95": 9.3, "episodes": 40, "method": "protonet", "matcher": "proto",
    "preset": "tiny", "dataset": "toy-appearance", "train_dataset": "toy-appearance", "setting": "5w1s", "way": 5,
    "shot": 1, "query": 1, "frames": 8, "episode_digest": "ab" * 32, "canonical": False,
    "canonical_reason": "test-5w1s-1q-40 is not a standard episode set of toy-appearance",
    "data_version": "toy-appearance/v2", "weights_source": "random-init", "params_total": 372688,
    "params_trainable": 372688, "train_steps": 4, "train_seconds": 1.5, "train_loss_last20": 1.2, "val_best": 40.0,
    "val_best_step": 2, "eval_seconds": 0.7, "run_key": "0123456789ab", "mlflow_run_id": "f" * 32,
    "environment": {"git_commit": "abc", "torch": "2.14.1"}, "world_size": 1, "hparams_changed": {},
    "flops_per_video": 6.5e7, "latency_ms_median": 3.0, "hardware_key": "cpu:x | 1 threads | torch 2.14.1",
}


def _record() -> RunRecord:
    ident = Identity(method="protonet", dataset="toy-motion", way=5, shot=1, query=1, episodes=10_000,
                     matcher="otam", preset="tiny", backbone="test_resnet", train_dataset="toy-motion", frames=8,
                     image_size=32, overrides={"image_size": 32}, hparams={"backbone": "test_resnet", "frames": 8},
                     train_config={"steps": 150, "lr": 0.001}, trained=True, train_steps=150, train_seed="0",
                     episode_seed="fsar-bench/toy-motion/test/v1", episode_digest="cd" * 32, canonical=True,
                     canonical_reason="locked standard set", data_version="toy-motion/v3",
                     weights_source="random-init", run_key="fedcba987654")
    env = Environment(versions={"git_commit": "abc", "torch": "2.14.1", "threads": "1"}, world_size=1,
                      hardware_key="cpu:x | 1 threads | torch 2.14.1")
    res = Results(accuracy=75.9, accuracy_std=21.0, ci95=0.41, train_steps=150, train_seconds=30.0,
                  train_loss_last20=0.5, val_best=70.0, val_best_step=120, eval_seconds=12.0)
    eff = Efficiency(params_total=372688, params_trainable=372688, flops_per_video=6.5e7, flops_per_episode=6.6e8,
                     latency_ms_median=3.0)
    return RunRecord(ident, env, res, eff, mlflow_run_id="e" * 32)


def test_docs_results_md_is_generated_from_the_record():
    text = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    assert check_docs(text), "docs/results.md is stale: run `python -m fsar_bench.results.record docs/results.md`"
    for name in ("accuracy", "episode_digest", "flops_per_video", "hardware_key", "train_steps_configured"):
        assert f"| `{name}` |" in schema_markdown()
    assert "Not written by runs today" not in text  # the efficiency fields are written


def test_format1_summary_still_loads_and_keeps_its_values():
    rec = RunRecord.from_summary(FORMAT1)
    assert rec.identity.setting == "5w1s" and rec.identity.train_steps == 4 and rec.identity.trained
    assert rec.identity.weights == "random-init" and rec.environment.git_commit == "abc"
    assert rec.efficiency.flops_per_video == 6.5e7 and rec.efficiency.flops_matcher is None
    out = rec.to_summary()
    assert out["format"] == FORMAT
    for key, value in FORMAT1.items():
        assert out[key] == value, key


def test_summary_round_trip_is_exact():
    rec = _record()
    summary = json.loads(json.dumps(rec.to_summary()))
    again = RunRecord.from_summary(summary)
    assert again == rec
    assert "per_episode" not in summary and summary["setting"] == "5w1s"


def test_mlflow_params_tags_metrics_read_back():
    rec = _record()
    params = {k: str(v) for k, v in rec.mlflow_params().items()}  # MLflow stores strings
    run = SimpleNamespace(data=SimpleNamespace(params=params, tags=rec.mlflow_tags(), metrics=rec.mlflow_metrics()),
                          info=SimpleNamespace(run_id=rec.mlflow_run_id, start_time=1, end_time=2))
    back = RunRecord.from_mlflow(run)
    i, j = back.identity, rec.identity
    for name in ("method", "dataset", "way", "shot", "query", "episodes", "matcher", "preset", "backbone",
                 "train_dataset", "frames", "image_size", "trained", "train_steps", "train_seed", "episode_seed",
                 "episode_digest", "canonical", "data_version", "weights_source", "weights", "run_key"):
        assert getattr(i, name) == getattr(j, name), name
    assert back.results.accuracy == rec.results.accuracy and back.efficiency == rec.efficiency
    assert back.environment.hardware_key == rec.environment.hardware_key
    assert params["hp.backbone"] == "test_resnet" and params["train.steps"] == "150"
    assert rec.mlflow_tags()["fsar.setting"] == "5w1s"


def test_not_a_benchmark_run_is_none():
    run = SimpleNamespace(data=SimpleNamespace(params={"sweep": "nway"}, tags={}, metrics={}),
                          info=SimpleNamespace(run_id="x", start_time=0, end_time=0))
    assert RunRecord.from_mlflow(run) is None


def test_committed_snapshots_load_and_save_stably(tmp_path):
    """The committed leaderboard snapshots (format fsar-leaderboard-runs/1) load into records; saving
    keeps every value they hold, and a second save is byte-identical."""
    from fsar_bench.leaderboard import load_snapshot, save_snapshot

    for path in sorted((ROOT / "leaderboards" / "runs").glob("*.json")):
        records = load_snapshot(path)
        assert records and all(math.isfinite(r.results.accuracy) for r in records)
        first, second = tmp_path / "a.json", tmp_path / "b.json"
        save_snapshot(records, first)
        save_snapshot(load_snapshot(first), second)
        assert first.read_bytes() == second.read_bytes()
        old, new = json.loads(path.read_text())["runs"], json.loads(first.read_text())["runs"]
        for o, n in zip(old, new):
            assert {k: v for k, v in n.items() if k in o} == o
        ranked = [r for r in records if r.results.per_episode is not None]
        assert ranked and all(np.all((r.results.per_episode >= 0) & (r.results.per_episode <= 1)) for r in ranked)
