"""Experiment suites: N-way, shot, frames, cross-dataset and efficiency sweeps.

One MLflow parent run per sweep, one child run per point, and a plot. N-way and shot sweeps
train once (at the first point) and re-score the same weights at every other point: the model
fingerprint is unchanged, so the embedding cache serves every point and only the matcher runs
again (`retrain=True` trains each point instead). Frame-count and cross-dataset points each
train their own model; the efficiency sweep runs each listed method and profiles it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fsar_bench.config import BenchConfig
from fsar_bench.engine.runner import Progress, RunResult, RunSpec, execute, resolve
from fsar_bench.errors import FsarError, unknown
from fsar_bench.io import atomic_path, atomic_write

KINDS = ("nway", "shot", "frames", "cross-dataset", "efficiency")


@dataclass
class SweepPoint:
    label: str  # the x value as shown ("6", "kinetics100 -> hmdb51", "protonet")
    x: float | None  # numeric x for the plot (None for categorical points)
    result: RunResult
    profile: dict[str, Any] | None = None


@dataclass
class SweepResult:
    kind: str
    parent_run_id: str
    points: list[SweepPoint]
    plot: Path | None


def _points(kind: str, base: RunSpec, suite: dict[str, Any], retrain: bool) -> list[tuple[str, float | None, RunSpec]]:
    """(label, x, spec) per point; specs with init_from=None train, the others re-score."""
    if kind == "nway":
        return [(str(w), float(w), dataclasses.replace(base, way=int(w), shot=int(suite.get("shot", base.shot))))
                for w in suite["ways"]]
    if kind == "shot":
        return [(str(k), float(k), dataclasses.replace(base, shot=int(k), way=int(suite.get("way", base.way))))
                for k in suite["shots"]]
    if kind == "frames":
        return [(str(f), float(f), dataclasses.replace(base, frames=int(f))) for f in suite["frames"]]
    if kind == "cross-dataset":
        return [(f"{tr} -> {te}", None, dataclasses.replace(base, train_dataset=tr, dataset=te))
                for tr, te in suite["pairs"]]
    if kind == "efficiency":
        return [(m, None, dataclasses.replace(base, method=m)) for m in suite["methods"]]
    raise unknown("sweep", kind, KINDS)


def run_sweep(kind: str, base: RunSpec, config: BenchConfig, retrain: bool = False, plot_dir: Path | None = None,
              progress: Progress | None = None, log: Callable[[str], None] = print,
              launcher: str = "local") -> SweepResult:
    if kind not in KINDS:
        raise unknown("sweep", kind, KINDS)
    suite = config["sweeps"].get(kind)
    if not suite:
        raise FsarError(f"bench.yaml defines no '{kind}' sweep", f"add sweeps.{kind} to bench.yaml")
    points = _points(kind, base, suite, retrain)
    for _, _, spec in points:  # every point's plan resolves (names, presets, episode shapes) before any trains
        resolve(spec)
    reuse = kind in ("nway", "shot") and not retrain

    from fsar_bench.tracking import Tracker

    tracker = Tracker(config.tracking_uri, config["experiment"], config.results_dir / "mlartifacts")
    name = f"sweep-{kind}-{base.method}-{base.dataset}"
    parent = tracker.start(name, {"sweep": kind, "method": base.method, "dataset": base.dataset,
                                  "points": json.dumps([p[0] for p in points]), "retrain": retrain},
                           {"fsar.sweep": kind, "fsar.method": base.method, "fsar.dataset": base.dataset})
    status = "FAILED"
    done: list[SweepPoint] = []
    try:
        weights: str | None = None
        jobs = None  # --launcher submitit: every point a cluster job of one group (fsar_bench.launch)
        if launcher != "local":
            from fsar_bench.launch import launch_sweep_points

            jobs = iter(launch_sweep_points(name, [(p[0], p[2]) for p in points], config, parent, reuse, log))
        for label, x, spec in points:
            if reuse and weights:
                spec = dataclasses.replace(spec, no_train=True, init_from=weights)
            log(f"sweep {kind}: point {label}")
            result = next(jobs) if jobs else execute(spec, config, progress=progress, log=log, parent_run_id=parent)
            if reuse and weights is None and (result.run_dir / "final.pt").exists():
                weights = str(result.run_dir / "final.pt")
            profile = _profile(result) if kind == "efficiency" else None
            done.append(SweepPoint(label, x, result, profile))
        plot = _plot(kind, base, done, plot_dir or config.results_dir / "sweeps")
        if plot:
            tracker.log_artifact(plot)
        table = plot.with_suffix(".json") if plot else None
        if table:
            atomic_write(table, json.dumps([{"point": p.label, "accuracy": p.result.summary["accuracy"],
                                          "ci95": p.result.summary["ci95"], "run": p.result.mlflow_run_id,
                                          **(p.profile or {})} for p in done], indent=2, default=str))
            tracker.log_artifact(table)
        status = "FINISHED"
        return SweepResult(kind, parent, done, plot)
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        tracker.end(status)


def _profile(result: RunResult) -> dict[str, Any]:
    """The efficiency of a point: the profile its run measured on its own trained model (same preset,
    same hardware key), already logged as the child run's metrics."""
    eff = dataclasses.asdict(result.record.efficiency) if result.record else {}
    return {k: v for k, v in eff.items() if v is not None}


def _plot(kind: str, base: RunSpec, points: list[SweepPoint], folder: Path) -> Path | None:
    """Accuracy (with 95% CI) against the swept variable, or against GFLOPs and params for efficiency."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    acc = [p.result.summary["accuracy"] for p in points]
    ci = [p.result.summary["ci95"] for p in points]
    if kind == "efficiency":
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        for ax, key, label in ((axes[0], "flops_per_video", "GFLOPs per video"),
                               (axes[1], "params_total", "parameters (M)")):
            xs = [((p.profile or {}).get(key) or p.result.summary.get(key) or 0) / 1e9 if key.startswith("flops")
                  else p.result.summary["params_total"] / 1e6 for p in points]
            ax.errorbar(xs, acc, yerr=ci, fmt="o", capsize=3)
            for x, y, p in zip(xs, acc, points):
                ax.annotate(p.label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
            ax.set_xlabel(label)
            ax.set_ylabel("accuracy (%)")
    else:
        fig, ax = plt.subplots(figsize=(5, 3.6))
        numeric = all(p.x is not None for p in points)
        xs = [p.x for p in points] if numeric else list(range(len(points)))
        ax.errorbar(xs, acc, yerr=ci, fmt="o-", capsize=3)
        if not numeric:
            ax.set_xticks(xs, [p.label for p in points], rotation=15, fontsize=8)
        ax.set_xlabel({"nway": "way (N)", "shot": "shot (K)", "frames": "frames per video",
                       "cross-dataset": "train -> test"}[kind])
        ax.set_ylabel("accuracy (%), 95% CI")
    fig.suptitle(f"{base.method} on {base.dataset}: {kind} sweep", fontsize=10)
    fig.tight_layout()
    path = folder / f"{kind}-{base.method}-{base.dataset}.png"
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return path
