"""`fsar-bench status [GROUP]`: the points of a group launched with `--launcher submitit`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer


def status(
    group: Optional[str] = typer.Argument(None, help="group name (or its start: the newest match); "
                                          "none: list the launched groups"),
    config: Optional[Path] = typer.Option(None, help="bench.yaml to read"),
    results_dir: Optional[Path] = typer.Option(None, help="where run folders and groups/ are (default fsar-runs)"),
) -> None:
    """Show each point of a launched group: pending, running, done (accuracy, run folder) or failed
    (the last error line), from the run folders, the job files and the MLflow store.

    Examples:

      fsar-bench status

      fsar-bench status sweep-shot-dmgal_ft-ucf101
    """
    from rich.console import Console
    from rich.table import Table

    from fsar_bench.config import load_config
    from fsar_bench.launch.status import find_group, group_status, list_groups

    cfg = load_config(config)
    root = Path(results_dir) if results_dir else cfg.results_dir
    console = Console(width=200)
    if group is None:
        groups = list_groups(root)
        if not groups:
            print(f"no launched groups under {root / 'groups'}")
            return
        table = Table(title=f"launched groups ({root / 'groups'})")
        for col in ("group", "created", "cluster", "points"):
            table.add_column(col)
        for g in groups:
            info = g.info()
            created = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.get("created", 0)))
            table.add_row(g.name, created, info.get("cluster", ""), str(len(g.points())))
        console.print(table)
        return
    info, points = group_status(find_group(root, group))
    table = Table(title=f"group {info.get('group')} (MLflow parent run {info.get('parent_run_id') or '-'}, "
                        f"{info.get('cluster')} jobs in {info.get('jobs')})")
    for col in ("point", "state", "attempts", "job", "accuracy", "mlflow", "run folder / last error"):
        table.add_column(col, overflow="fold")
    for p in points:
        acc = f"{p.accuracy:.2f}" if isinstance(p.accuracy, (int, float)) else ""
        table.add_row(p.name, p.state, str(p.attempts), p.job, acc, p.mlflow, p.detail)
    console.print(table)
    counts = {s: sum(p.state == s for p in points) for s in ("done", "running", "pending", "failed")}
    print(", ".join(f"{n} {s}" for s, n in counts.items()))


def register(app: typer.Typer) -> None:
    app.command(name="status")(status)
