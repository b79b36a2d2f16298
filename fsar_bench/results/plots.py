"""Publication figures: accuracy against a swept variable, several methods in one figure.

Each figure is written as vector PDF (for papers) and PNG (for READMEs and MLflow), with the
chance level 100 / N of an N-way episode, the setting in the title and 95% error bars: the
episode-sampling CI of one run (docs/statistics.md eq. (5)), or, when a point has several
training seeds (a seed group), the hierarchical CI over seeds and episodes (eq. (6)).
Points come from runs (their summary.json and per-episode results), so a figure can mix the
points of several sweeps (`fsar-bench plot`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fsar_bench.errors import FsarError
from fsar_bench.io import atomic_path

AXES = {"way": "way (N)", "shot": "shot (K)", "frames": "frames per video", "train_dataset": "training dataset",
        "method": "method"}
FORMATS = ("pdf", "png")


@dataclass
class Point:
    """One x value of one series: the runs there (R seeds), their mean and 95% error bar half-width."""

    x: Any
    mean: float
    err: float
    replicates: int = 1


@dataclass
class Series:
    label: str
    points: list[Point] = field(default_factory=list)


def point(summaries: Sequence[dict[str, Any]], accuracies: Sequence[np.ndarray] | None, x: Any) -> Point:
    """A point from its runs: one run -> its accuracy and ci95; R > 1 seeds on the same episodes ->
    the group mean and half the width of the hierarchical CI (fsar_bench.results.groups)."""
    if len(summaries) == 1 or accuracies is None:
        s = summaries[0]
        return Point(x, float(s["accuracy"]), float(s.get("ci95") or 0.0))
    from fsar_bench.results.groups import stack_replicates, summarize_group

    digests = {s.get("episode_digest") for s in summaries}
    if len(digests) != 1:
        raise FsarError(f"the runs at {x} were scored on different episode sets",
                        "plot seed replicates of one setting (same episode_digest) together")
    g = summarize_group(stack_replicates([(str(i), a) for i, a in enumerate(accuracies)]))
    lo, hi = g.hierarchical_ci or g.episode_ci
    return Point(x, g.mean, (hi - lo) / 2, g.replicates)


def series_label(summary: dict[str, Any], axis: str) -> str:
    """What tells the series apart: method (+ matcher), and frames when frames are not the x axis."""
    label = str(summary.get("method", "?"))
    if summary.get("matcher"):
        label += f" ({summary['matcher']})"
    if axis != "frames" and summary.get("frames") and summary.get("_frames_differ"):
        label += f", {summary['frames']} frames"
    return label


def title(summaries: Sequence[dict[str, Any]], axis: str) -> str:
    """'toy-motion, 5-way 1-shot, 1 query' with the swept quantity left out ('N-way 1-shot' for a way sweep)."""
    s = summaries[0]
    datasets = sorted({str(x.get("dataset")) for x in summaries})
    way = "N" if axis == "way" else s.get("way")
    shot = "K" if axis == "shot" else s.get("shot")
    return f"{', '.join(datasets)}: {way}-way {shot}-shot, {s.get('query', 1)} query per class"


def figure(series: Sequence[Series], axis: str, title_text: str, stem: Path, chance_way: int | None) -> list[Path]:
    """Write `<stem>.pdf` and `<stem>.png` (atomic). `chance_way`: the N of the chance line 100/N
    (None on a way axis: the line follows 100/x)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs_all = [p.x for s in series for p in s.points]
    numeric = all(isinstance(x, (int, float)) for x in xs_all)
    cats = [] if numeric else list(dict.fromkeys(str(x) for x in xs_all))
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    for i, s in enumerate(series):
        pts = sorted(s.points, key=lambda p: p.x) if numeric else s.points
        xs = [p.x for p in pts] if numeric else [cats.index(str(p.x)) + 0.08 * (i - (len(series) - 1) / 2)
                                                   for p in pts]
        ax.errorbar(xs, [p.mean for p in pts], yerr=[p.err for p in pts], fmt="o-" if numeric else "o",
                    capsize=3, label=s.label, markersize=4, linewidth=1.2)
    _chance(ax, axis, numeric, sorted(set(xs_all)) if numeric else cats, chance_way)
    if not numeric:
        ax.set_xticks(range(len(cats)), cats, rotation=15, fontsize=8)
    elif all(float(x).is_integer() for x in xs_all):
        ax.set_xticks(sorted(set(xs_all)))
    ax.set_xlabel(AXES.get(axis, axis))
    ax.set_ylabel("accuracy (%), 95% CI")
    ax.set_title(title_text, fontsize=9)
    ax.grid(alpha=0.3, linewidth=0.5)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return save(fig, stem)


def _chance(ax: Any, axis: str, numeric: bool, xs: list[Any], chance_way: int | None) -> None:
    if axis == "way" and numeric:
        grid = np.linspace(min(xs), max(xs), 50)
        ax.plot(grid, 100.0 / grid, "k:", linewidth=1, label="chance (100/N)")
    elif chance_way:
        ax.axhline(100.0 / chance_way, color="k", linestyle=":", linewidth=1, label=f"chance (1/{chance_way})")


def save(fig: Any, stem: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    try:
        for fmt in FORMATS:
            path = stem.with_name(f"{stem.name}.{fmt}")
            with atomic_path(path, suffix=f".{fmt}") as tmp:
                fig.savefig(tmp, dpi=200, bbox_inches="tight")
            out.append(path)
    finally:
        plt.close(fig)
    return out


def from_runs(runs: Sequence[tuple[dict[str, Any], np.ndarray | None]], axis: str) -> list[Series]:
    """Series (one per method/matcher label) of points (one per value of `axis`) from (summary,
    per-episode accuracies) pairs; runs of the same label and x are seed replicates of one point."""
    if axis not in AXES:
        raise FsarError(f"unknown plot axis {axis!r}", f"use one of: {', '.join(AXES)}")
    frames = {s.get("frames") for s, _ in runs}
    groups: dict[str, dict[Any, list[tuple[dict[str, Any], np.ndarray | None]]]] = {}
    for s, acc in runs:
        if axis not in s:
            raise FsarError(f"run {s.get('mlflow_run_id') or s.get('method')} has no {axis!r}",
                            "plot runs written by fsar-bench run (summary.json format 2)")
        label = series_label({**s, "_frames_differ": len(frames) > 1}, axis)
        groups.setdefault(label, {}).setdefault(s[axis], []).append((s, acc))
    out = []
    for label, by_x in groups.items():
        pts = []
        for x, members in by_x.items():
            accs = [a for _, a in members]
            pts.append(point([m for m, _ in members], None if any(a is None for a in accs) else accs, x))
        out.append(Series(label, pts))
    return out
