"""`fsar-bench plot RUN|SWEEP|GROUP ...`: one publication figure (PDF + PNG) of several runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from fsar_bench.errors import FsarError

_VARYING = ("way", "shot", "frames", "train_dataset")


def expand(refs: list[str], tracking_uri: str | None, config: Path | None) -> list[str]:
    """Run references from the arguments: a run folder or run id as is; a sweep table (`.json` written
    by `fsar-bench sweep`) -> its points' run folders; an MLflow parent run (a sweep, a seed group)
    -> its finished child runs."""
    from fsar_bench.results.runs import _RUN_ID

    out: list[str] = []
    for ref in refs:
        path = Path(ref).expanduser()
        if path.is_file() and path.suffix == ".json" and path.name != "summary.json":
            out.extend(_sweep_table(path))
        elif not path.exists() and _RUN_ID.match(ref):
            from fsar_bench.config import load_config
            from fsar_bench.tracking import child_runs

            out.extend(child_runs(tracking_uri or load_config(config).tracking_uri, ref) or [ref])
        else:
            out.append(ref)
    return out


def _sweep_table(path: Path) -> list[str]:
    try:
        rows = json.loads(path.read_text())
        out = []
        for r in rows:  # a point with seeds lists every replicate (`run_dirs`, `runs`)
            for d, run in zip(r.get("run_dirs") or [r.get("run_dir")], r.get("runs") or [r["run"]]):
                out.append(d if d and Path(d).is_dir() else run)
        return out
    except (ValueError, KeyError, TypeError, AttributeError):
        raise FsarError(f"{path} is not a sweep table (a list of points with 'run' or 'run_dir')",
                        "pass the .json beside a sweep's plot, run folders or MLflow run ids") from None


def pick_axis(summaries: list[dict[str, Any]]) -> str:
    """The first of way, shot, frames, training dataset that differs between the runs, else 'method'."""
    for key in _VARYING:
        if len({str(s.get(key)) for s in summaries}) > 1:
            return key
    return "method"


def plot(
    runs: list[str] = typer.Argument(..., help="run folders, MLflow run ids, sweep tables (sweeps/*.json) or "
                                     "MLflow parent runs (a sweep, a seed group): their points"),
    output: Path = typer.Option(..., "--output", "-o", help="figure path without extension: writes .pdf and .png"),
    x: Optional[str] = typer.Option(None, "--x", help="x axis: way | shot | frames | train_dataset | method "
                                    "(default: the first that differs between the runs)"),
    title: Optional[str] = typer.Option(None, help="figure title (default: datasets and setting)"),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow tracking URI (for run ids)"),
    config: Optional[Path] = typer.Option(None, help="bench.yaml to read (tracking URI)"),
) -> None:
    """Plot accuracy (95% error bars; hierarchical CI over seeds when a point has several) against a
    swept variable, one line per method (+ matcher), with the chance level.

    Examples:

    \b
      fsar-bench plot fsar-runs/sweeps/nway-protonet-toy-motion.json fsar-runs/sweeps/nway-protonet+otam-toy-motion.json -o fig/nway
      fsar-bench plot 3f2a...e1 9b7c...04 -o fig/shot --x shot
    """
    from fsar_bench.results import plots
    from fsar_bench.results.runs import load_run
    from fsar_bench.validate import check_output_folder

    check_output_folder(output.parent if str(output.parent) else Path("."), "--output")
    loaded = [load_run(ref, tracking_uri, config) for ref in expand(runs, tracking_uri, config)]
    summaries = [s for s, _ in loaded]
    axis = x or pick_axis(summaries)
    series = plots.from_runs([(s, df["accuracy"].to_numpy(dtype=float)) for s, df in loaded], axis)
    ways = {int(s["way"]) for s in summaries}
    chance = None if axis == "way" else (ways.pop() if len(ways) == 1 else None)
    paths = plots.figure(series, axis, title or plots.title(summaries, axis), output, chance)
    for path in paths:
        typer.echo(f"figure: {path}")


def register(app: typer.Typer) -> None:
    app.command(name="plot")(plot)
