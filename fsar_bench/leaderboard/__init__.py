"""Leaderboards: reproduced runs (MLflow) next to the papers' reported numbers, per dataset and setting.

    records = runs_from_mlflow(uri, "fsar-bench", datasets=["toy-motion"])
    text = make(records, datasets=["toy-motion"], fmt="md")

The committed toy leaderboards (`leaderboards/<dataset>.md`) are rendered from runs snapshots
(`leaderboards/runs/<dataset>.json`) by `update_committed`; `stale_committed` is CI's check.
See docs/leaderboard.md for the rules.
"""

from __future__ import annotations

from pathlib import Path

from fsar_bench.io import atomic_write
from fsar_bench.leaderboard.build import Board, Leaderboard, build
from fsar_bench.leaderboard.reproduced import load_episodes, load_snapshot, query_mlflow, save_snapshot
from fsar_bench.results.record import RunRecord

__all__ = ["Board", "Leaderboard", "RunRecord", "build", "make", "runs_from_mlflow", "save_snapshot",
           "load_snapshot", "committed_targets", "render_committed", "stale_committed", "update_committed"]

UPDATE_COMMAND = "fsar-bench leaderboard --update leaderboards"


def runs_from_mlflow(tracking_uri: str, experiment: str, datasets: list[str] | None = None,
                     settings: list[str] | None = None) -> list[RunRecord]:
    """Deduplicated finished runs with their per-episode results: the ranked ones need them for tiers,
    the listed-apart seed groups for their hierarchical CI."""
    from fsar_bench.leaderboard.reported import resolve_dataset

    names = [resolve_dataset(d) for d in datasets] if datasets else None
    records = query_mlflow(tracking_uri, experiment, names, settings)
    load_episodes(records, tracking_uri)
    return records


def make(records: list[RunRecord], datasets: list[str] | None = None, settings: list[str] | None = None,
         fmt: str = "md", reported: bool = True, all_reported: bool = False, header: str | None = None) -> str:
    from fsar_bench.leaderboard.render import render

    return render(build(records, datasets, settings, reported, all_reported, header), fmt)


# -- the committed leaderboards -----------------------------------------------------------------

def committed_targets(folder: Path) -> list[tuple[str, Path, Path]]:
    """(dataset, runs snapshot, markdown file) for every `<folder>/runs/<dataset>.json`."""
    folder = Path(folder)
    return [(p.stem, p, folder / f"{p.stem}.md") for p in sorted((folder / "runs").glob("*.json"))]


def render_committed(dataset: str, snapshot: Path) -> str:
    header = (f"Generated from the runs in `runs/{dataset}.json` by `{UPDATE_COMMAND}`; do not edit by hand "
              "(CI fails when this file is stale). docs/leaderboard.md explains how to add runs.")
    return make(load_snapshot(snapshot), datasets=[dataset], fmt="md", header=header)


def stale_committed(folder: Path) -> list[Path]:
    """The committed leaderboards that differ from what their snapshots render to today."""
    stale = []
    for dataset, snapshot, md in committed_targets(folder):
        text = render_committed(dataset, snapshot)
        if not md.exists() or md.read_text(encoding="utf-8") != text:
            stale.append(md)
    return stale


def update_committed(folder: Path) -> list[Path]:
    """Re-render every committed leaderboard from its snapshot; returns the files written."""
    written = []
    for dataset, snapshot, md in committed_targets(folder):
        text = render_committed(dataset, snapshot)
        if not md.exists() or md.read_text(encoding="utf-8") != text:
            atomic_write(md, text)
            written.append(md)
    return written
