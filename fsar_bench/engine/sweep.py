"""Experiment suites: N-way, shot, frames, cross-dataset and efficiency sweeps.

One MLflow parent run per sweep (found again by its `fsar.sweep_key` tag when the same sweep runs
again), one child run per point, and a plot. N-way and shot sweeps train once (at the first point)
and re-score the same weights at every other point: the model fingerprint is unchanged, so the
embedding cache serves every point and only the matcher runs again (`retrain=True` trains each
point instead). Frame-count and cross-dataset points each train their own model; the efficiency
sweep runs each listed method and profiles it.

With `seeds` (`--seeds N` / repeated `--seed`), every point is a replicate group
(`engine.replicates.run_group`), nested under the sweep's parent run; a re-scoring sweep trains
each seed once at the first point and re-scores that seed's weights at the others. The table and
plot then show the group mean and its hierarchical CI (docs/statistics.md eq. (6)).

Every point's record says which sweep it belongs to (`identity.sweep`): leaderboards list sweep
points apart (docs/leaderboard.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fsar_bench.config import BenchConfig
from fsar_bench.engine.replicates import GroupResult, run_group
from fsar_bench.engine.runner import Progress, RunResult, RunSpec, execute, resolve
from fsar_bench.errors import FsarError, unknown
from fsar_bench.io import atomic_write
from fsar_bench.results.record import group_mlflow_params

KINDS = ("nway", "shot", "frames", "cross-dataset", "efficiency")
AXIS = {"nway": "way", "shot": "shot", "frames": "frames", "cross-dataset": "train_dataset", "efficiency": "method"}
SWEEP_KEY_TAG = "fsar.sweep_key"  # on a sweep's MLflow parent run: digest of what the sweep ran


@dataclass
class SweepPoint:
    label: str  # the x value as shown ("6", "kinetics100 -> hmdb51", "protonet")
    x: float | None  # numeric x for the plot (None for categorical points)
    result: RunResult  # the run (with seeds: the first replicate)
    profile: dict[str, Any] | None = None
    group: GroupResult | None = None  # with seeds: the point's replicate group

    @property
    def runs(self) -> list[RunResult]:
        return self.group.runs if self.group else [self.result]

    def accuracy(self) -> tuple[float, float, str]:
        """(mean, 95% half-width, what the interval covers): with >= 2 seeds the group mean and the
        half-width of its hierarchical CI (seeds + episodes), else the run's accuracy and ci95."""
        g = self.group.summary if self.group else None
        if g is not None and g.hierarchical_ci is not None:
            lo, hi = g.hierarchical_ci
            return g.mean, (hi - lo) / 2, "hierarchical"
        s = self.result.summary
        return float(s["accuracy"]), float(s["ci95"]), "episodes"


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


@dataclass
class _Context:
    """What every point of one sweep shares."""

    config: BenchConfig
    parent: str
    seeds: list[str] | None
    progress: Progress | None
    log: Callable[[str], None]
    jobs: Any = None  # --launcher submitit: an iterator over the points' finished runs


def run_sweep(kind: str, base: RunSpec, config: BenchConfig, retrain: bool = False, plot_dir: Path | None = None,
              progress: Progress | None = None, log: Callable[[str], None] = print,
              launcher: str = "local", seeds: list[str] | None = None) -> SweepResult:
    """Run every point of the bench.yaml suite `kind` around `base` (one run, or with `seeds` one
    replicate group, per point) under one MLflow parent run; then the figure and the json table."""
    points, name = _plan(kind, base, config, retrain, launcher, seeds)
    reuse = kind in ("nway", "shot") and not retrain
    tracker, parent = _open_parent(config, name, {
        "sweep": kind, "method": base.method, "dataset": base.dataset, "matcher": base.matcher or "",
        "points": json.dumps([p[0] for p in points]), "retrain": retrain,
        **({"seeds": json.dumps(seeds)} if seeds else {})}, base)
    ctx = _Context(config, parent, seeds, progress, log)
    status = "FAILED"
    try:
        if launcher != "local":  # every point a cluster job of one group (fsar_bench.launch)
            from fsar_bench.launch import launch_sweep_points

            ctx.jobs = iter(launch_sweep_points(name, [(p[0], p[2]) for p in points], config, parent, reuse, log))
        done: list[SweepPoint] = []
        weights: dict[str | None, str] = {}  # seed (None: no seeds) -> the weights the re-scored points use
        for label, x, spec in points:
            log(f"sweep {kind}: point {label}")
            point = _run_point(label, x, spec, weights, ctx)
            if reuse and not weights:
                weights = _trained_weights(point, seeds)
            if kind == "efficiency":
                point.profile = _profile(point.result)
            done.append(point)
        plot = _write_outputs(kind, base, done, plot_dir or config.results_dir / "sweeps", tracker)
        # the params every point shares (matcher, preset, shot of an nway sweep, ...): the runs table's columns
        tracker.log_new_params(group_mlflow_params([r.record for p in done for r in p.runs if r.record]))
        status = "FINISHED"
        return SweepResult(kind, parent, done, plot)
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        tracker.end(status)


def _plan(kind: str, base: RunSpec, config: BenchConfig, retrain: bool, launcher: str,
          seeds: list[str] | None) -> tuple[list[tuple[str, float | None, RunSpec]], str]:
    """The points (each spec marked with its sweep) and the parent run name; every point's plan
    resolves (names, presets, episode shapes) before any trains."""
    if kind not in KINDS:
        raise unknown("sweep", kind, KINDS)
    suite = config["sweeps"].get(kind)
    if not suite:
        raise FsarError(f"bench.yaml defines no '{kind}' sweep", f"add sweeps.{kind} to bench.yaml")
    check_seeds_launcher(seeds, launcher)
    name = f"sweep-{sweep_stem(kind, base)}"
    points = [(label, x, dataclasses.replace(spec, sweep={"kind": kind, "name": name, "axis": AXIS[kind],
                                                          "value": label}))
              for label, x, spec in _points(kind, base, suite, retrain)]
    for _, _, spec in points:
        resolve(spec)
    return points, name


def check_seeds_launcher(seeds: list[str] | None, launcher: str) -> None:
    """Replicate groups run in this process only (for now): say how to run them as cluster jobs."""
    if seeds and launcher != "local":
        raise FsarError("sweep --seeds with --launcher submitit is not supported yet",
                        "drop --seeds, or submit each point's seeds as jobs: fsar-bench run ... --seed S "
                        "--launcher submitit, once per seed (docs/cluster.md)")


def _open_parent(config: BenchConfig, name: str, params: dict[str, Any], base: RunSpec) -> tuple[Any, str]:
    """The sweep's MLflow parent run: the one this same sweep (same points, seeds, base spec, results
    folder) made before, reopened, so re-running or resuming a sweep adds no run; else a new one."""
    from fsar_bench.tracking import Tracker

    tracker = Tracker(config.tracking_uri, config["experiment"], config.results_dir / "mlartifacts")
    payload = json.dumps({"params": params, "base": dataclasses.asdict(base), "results": str(config.results_dir)},
                         sort_keys=True, default=str)
    key = hashlib.sha256(payload.encode()).hexdigest()[:12]
    if not tracker.reopen(SWEEP_KEY_TAG, key):
        logged = {k: v for k, v in params.items() if v != ""}  # no --matcher: the points' own, logged at the end
        tracker.start(name, logged, {"fsar.sweep": params["sweep"], "fsar.method": params["method"],
                                     "fsar.dataset": params["dataset"], SWEEP_KEY_TAG: key})
    return tracker, tracker.run_id


def _run_point(label: str, x: float | None, spec: RunSpec, weights: dict[str | None, str],
               ctx: _Context) -> SweepPoint:
    """One point: a run (re-scoring `weights[None]` when given), or with seeds a replicate group
    nested under the sweep (each seed re-scoring its own `weights[seed]`)."""
    if ctx.seeds is None:
        if weights:
            spec = _rescore(spec, weights[None])
        result = next(ctx.jobs) if ctx.jobs else execute(spec, ctx.config, progress=ctx.progress, log=ctx.log,
                                                         parent_run_id=ctx.parent)
        return SweepPoint(label, x, result)
    vary = (lambda s, seed: _rescore(s, weights[seed])) if weights else None
    group = run_group(spec, ctx.seeds, ctx.config, ctx.progress, ctx.log, vary=vary, parent=ctx.parent)
    return SweepPoint(label, x, group.runs[0], group=group)


def _rescore(spec: RunSpec, weights: str) -> RunSpec:
    return dataclasses.replace(spec, no_train=True, init_from=weights)


def _trained_weights(point: SweepPoint, seeds: list[str] | None) -> dict[str | None, str]:
    """Seed -> final.pt of the point's runs ({} when a run did not train: the next point trains)."""
    files = [r.run_dir / "final.pt" for r in point.runs]
    if not all(f.exists() for f in files):
        return {}
    return dict(zip(seeds or [None], (str(f) for f in files)))


def _write_outputs(kind: str, base: RunSpec, done: list[SweepPoint], folder: Path, tracker: Any) -> Path | None:
    """The figure (PDF + PNG) and the json table beside it, logged on the sweep's parent run; the PNG."""
    figures = _plot(kind, base, done, folder)
    for path in figures:
        tracker.log_artifact(path)
    plot = figures[-1] if figures else None  # the PNG
    if plot:
        table = plot.with_suffix(".json")
        atomic_write(table, json.dumps([table_row(p) for p in done], indent=2, default=str))
        tracker.log_artifact(table)
    return plot


def table_row(p: SweepPoint) -> dict[str, Any]:
    """A point in the sweep's json table (`fsar-bench plot` reads `run_dirs` / `runs`): accuracy and
    ci95 are the group mean and hierarchical half-width with >= 2 seeds (`ci_kind`)."""
    acc, ci, kind = p.accuracy()
    row: dict[str, Any] = {"point": p.label, "accuracy": acc, "ci95": ci, "ci_kind": kind,
                           "run": p.result.mlflow_run_id, "run_dir": str(p.result.run_dir),
                           "runs": [r.mlflow_run_id for r in p.runs], "run_dirs": [str(r.run_dir) for r in p.runs]}
    if p.group:
        row.update(seeds=[r.summary.get("train_seed") for r in p.runs], group_key=p.group.group_key,
                   group_dir=str(p.group.group_dir) if p.group.group_dir else None,
                   group_run=p.group.mlflow_run_id, statistics=p.group.summary.as_dict())
    return {**row, **(p.profile or {})}


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


def _plot(kind: str, base: RunSpec, points: list[SweepPoint], folder: Path) -> list[Path]:
    """The sweep's figure as PDF and PNG (fsar_bench.results.plots): accuracy with 95% CI (with seeds:
    group mean and hierarchical CI) against the swept variable, or against GFLOPs and parameters."""
    from fsar_bench.results import plots

    stem = folder / sweep_stem(kind, base)
    summaries = [p.result.summary for p in points]
    if kind == "efficiency":
        return _efficiency_plot(base, points, stem, plots.title(summaries, ""))
    label = plots.series_label(summaries[0], AXIS[kind])
    series = plots.Series(label, [plots.Point(p.x if p.x is not None else p.label, *p.accuracy()[:2], len(p.runs))
                                  for p in points])
    return plots.figure([series], AXIS[kind], plots.title(summaries, AXIS[kind]), stem,
                        None if kind == "nway" else base.way)


def _efficiency_plot(base: RunSpec, points: list[SweepPoint], stem: Path, title: str) -> list[Path]:
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fsar_bench.results.plots import save

    acc = [p.accuracy()[0] for p in points]
    ci = [p.accuracy()[1] for p in points]
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
