"""`fsar-bench leaderboard`: reproduced runs (MLflow) next to the papers' reported numbers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from fsar_bench.errors import FsarError


def leaderboard(
    dataset: list[str] = typer.Option([], "--dataset", "-d", help="dataset (repeatable; card or reported name, "
                                      "e.g. ucf101, kinetics100, toy-motion); default: every dataset with rows"),
    setting: list[str] = typer.Option([], "--setting", "-s", help="setting <way>w<shot>s (repeatable), e.g. 5w1s; "
                                      "default: every setting with rows"),
    format_: str = typer.Option("md", "--format", "-f", help="md (fits a page), html or csv (every detail), "
                                "latex (booktabs tables for papers)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="write here (atomically) instead of stdout"),
    reported: bool = typer.Option(True, "--reported/--no-reported", help="include the papers' reported rows"),
    all_reported: bool = typer.Option(False, "--all-reported", help="reported rows of the ablation tables too "
                                      "(default: the papers' main comparison tables)"),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow tracking URI to read runs from "
                                               "(default: bench.yaml / $MLFLOW_TRACKING_URI / fsar-runs/mlflow.db)"),
    config: Optional[Path] = typer.Option(None, help="bench.yaml to read (tracking URI, experiment)"),
    experiment: Optional[str] = typer.Option(None, help="MLflow experiment (default: bench.yaml's, 'fsar-bench')"),
    runs: Optional[Path] = typer.Option(None, "--runs", help="read the runs from this snapshot file instead of MLflow"),
    save_runs: Optional[Path] = typer.Option(None, "--save-runs", help="also write the runs shown (with "
                                             "per-episode results) to this snapshot file, e.g. "
                                             "leaderboards/runs/toy-motion.json"),
    update: Optional[Path] = typer.Option(None, "--update", help="re-render every DIR/<dataset>.md from "
                                          "DIR/runs/<dataset>.json (e.g. --update leaderboards) and exit"),
    check: Optional[Path] = typer.Option(None, "--check", help="exit 1 if a DIR/<dataset>.md is not what "
                                         "DIR/runs/<dataset>.json renders to (what CI checks)"),
) -> None:
    """Methods x settings first (reproduced next to reported), then each setting's replicate groups.

    A reproduced row is a replicate group (runs that differ only in the training seed): mean,
    hierarchical CI, seeds, between-seed SD, hardware class, flags. Only canonical groups are
    ranked, within their weights class; tiers come from the seed-aware test, and single-seed
    groups are flagged and not tiered. Reported rows carry their papers and source tables.

    Examples:

    \b
      fsar-bench leaderboard --dataset ucf101 --setting 5w1s
      fsar-bench leaderboard --dataset toy-motion --format html --output toy-motion.html
      fsar-bench leaderboard --dataset ucf101 --format latex --output ucf101.tex
      fsar-bench leaderboard --dataset toy-motion --save-runs leaderboards/runs/toy-motion.json
      fsar-bench leaderboard --update leaderboards
    """
    from fsar_bench.leaderboard import (committed_targets, load_snapshot, make, runs_from_mlflow, save_snapshot,
                                        stale_committed, update_committed)
    from fsar_bench.leaderboard.reproduced import atomic_write

    if update is not None or check is not None:
        folder = update if update is not None else check
        if not committed_targets(folder):
            raise FsarError(f"{folder} has no runs/<dataset>.json snapshots",
                            "pass the leaderboards folder of the repo (e.g. --update leaderboards)")
        if update is not None:
            written = update_committed(folder)
            for path in written:
                typer.echo(f"updated {path}")
            typer.echo(f"{len(committed_targets(folder))} leaderboards, {len(written)} updated")
            return
        stale = stale_committed(folder)
        for path in stale:
            typer.echo(f"stale: {path}", err=True)
        if stale:
            typer.echo(f"regenerate with: fsar-bench leaderboard --update {folder}", err=True)
            raise typer.Exit(1)
        typer.echo(f"{len(committed_targets(folder))} leaderboards are current")
        return

    from fsar_bench.ui import clip
    from fsar_bench.validate import check_output_file, check_tracking_uri

    if format_ not in ("md", "csv", "html", "latex"):
        raise FsarError(f"unknown format {clip(format_)}", "use --format md, html, csv or latex")
    for path, flag in ((output, "--output"), (save_runs, "--save-runs")):
        if path is not None:
            check_output_file(path, flag)  # before reading MLflow and rendering
    if runs is not None and (tracking_uri or experiment):
        raise FsarError("--runs reads a snapshot file; --tracking-uri/--experiment read MLflow",
                        "pass one or the other")
    if runs is not None:
        from fsar_bench.leaderboard.reported import resolve_dataset

        names = {resolve_dataset(d) for d in dataset}
        records = [r for r in load_snapshot(runs)
                   if (not names or r.identity.dataset in names) and (not setting or r.identity.setting in setting)]
    else:
        from fsar_bench.config import load_config
        from fsar_bench.leaderboard.reported import parse_setting

        for s in setting:
            parse_setting(s)
        cfg = load_config(config)
        uri = tracking_uri or cfg.tracking_uri
        check_tracking_uri(uri, write=False, origin="--tracking-uri" if tracking_uri else cfg.tracking_uri_origin)
        records = runs_from_mlflow(uri, experiment or cfg["experiment"],
                                   dataset or None, setting or None)
    if save_runs is not None:
        save_snapshot(records, save_runs)
        records = load_snapshot(save_runs)  # render exactly what --runs will render from the file
        print(f"wrote {len(records)} runs to {save_runs}", file=sys.stderr)
    text = make(records, dataset or None, setting or None, fmt=format_, reported=reported, all_reported=all_reported)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        atomic_write(output, text)
    except OSError as exc:  # what the check above cannot see (a read-only mount seen as root, a full disk)
        raise FsarError(f"cannot write --output {output} ({exc.strerror or type(exc).__name__})",
                        "pass --output in a writable folder") from None
    print(f"wrote {output}", file=sys.stderr)


def register(app: typer.Typer) -> None:
    app.command(name="leaderboard")(leaderboard)
