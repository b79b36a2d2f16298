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
from fsar_bench.io import atomic_write

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
    name = f"sweep-{sweep_stem(kind, base)}"
    parent = tracker.start(name, {"sweep": kind, "method": base.method, "dataset": base.dataset,
                                  "matcher": base.matcher or "", "points": json.dumps([p[0] for p in points]),
                                  "retrain": retrain},
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
        figures = _plot(kind, base, done, plot_dir or config.results_dir / "sweeps")
        for path in figures:
            tracker.log_artifact(path)
        plot = figures[-1] if figures else None  # the PNG
        table = plot.with_suffix(".json") if plot else None
        if table:
            atomic_write(table, json.dumps([{"point": p.label, "accuracy": p.result.summary["accuracy"],
                                          "ci95": p.result.summary["ci95"], "run": p.result.mlflow_run_id,
                                          "run_dir": str(p.result.run_dir),
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


def sweep_stem(kind: str, base: RunSpec) -> str:
    """`<kind>-<method>[+<matcher>]-<dataset>`: the file stem and parent-run name of a sweep, so a
    sweep with another --matcher does not overwrite the first one's plot and table."""
    method = f"{base.method}+{base.matcher}" if base.matcher else base.method
    return f"{kind}-{method}-{base.dataset}"


AXIS = {"nway": "way", "shot": "shot", "frames": "frames", "cross-dataset": "train_dataset"}


def _plot(kind: str, base: RunSpec, points: list[SweepPoint], folder: Path) -> list[Path]:
    """The sweep's figure as PDF and PNG (fsar_bench.results.plots): accuracy with 95% CI against the
    swept variable, or against GFLOPs and parameters for efficiency."""
    from fsar_bench.results import plots

    stem = folder / sweep_stem(kind, base)
    summaries = [p.result.summary for p in points]
    if kind == "efficiency":
        return _efficiency_plot(base, points, stem, plots.title(summaries, ""))
    label = plots.series_label(summaries[0], AXIS[kind])
    series = plots.Series(label, [plots.Point(p.x if p.x is not None else p.label, p.result.summary["accuracy"],
                                              p.result.summary["ci95"]) for p in points])
    return plots.figure([series], AXIS[kind], plots.title(summaries, AXIS[kind]), stem,
                        None if kind == "nway" else base.way)


def _efficiency_plot(base: RunSpec, points: list[SweepPoint], stem: Path, title: str) -> list[Path]:
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fsar_bench.results.plots import save

    acc = [p.result.summary["accuracy"] for p in points]
    ci = [p.result.summary["ci95"] for p in points]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    for ax, key, label, scale in ((axes[0], "flops_per_video", "GFLOPs per video", 1e9),
                                  (axes[1], "params_total", "parameters (M)", 1e6)):
        xs = [((p.profile or {}).get(key) or p.result.summary.get(key) or 0) / scale for p in points]
        ax.errorbar(xs, acc, yerr=ci, fmt="o", capsize=3, markersize=4)
        for x, y, p in zip(xs, acc, points):
            ax.annotate(p.label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.axhline(100.0 / base.way, color="k", linestyle=":", linewidth=1, label=f"chance (1/{base.way})")
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy (%), 95% CI")
        ax.grid(alpha=0.3, linewidth=0.5)
    axes[0].legend(fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save(fig, stem)
