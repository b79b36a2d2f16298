"""`fsar-bench reproduce RUN_KEY`: re-run one leaderboard row and check the new number against it.

A leaderboard row is a replicate group (the runs of one command that differ in the training
seed). Reproducing it trains and evaluates one NEW replicate (a seed the row does not hold yet) of
the row's exact command (its recorded arguments, `RunRecord.identity.spec`: `--set` values,
matcher options, flags), with the current code on this machine, and reports whether the group key
is the row's and whether its accuracy falls inside the row's
between-seed interval: the 95% prediction interval of one more replicate,
mean ± t(R-1, 0.975) · SD · sqrt(1 + 1/R), from the row's R replicate accuracies (R >= 2). A row
with one seed has no between-seed interval; the episode-sampling CI is then reported, with the
caveat that training variance is unmeasured (docs/statistics.md).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import typer

from fsar_bench.errors import FsarError


def find_row(key: str, snapshots: list[Path]) -> tuple[Any, list[Any], Path]:
    """(the run whose run key or group key is `key`, all runs of its group, the snapshot file)."""
    from fsar_bench.leaderboard.reproduced import load_snapshot

    for path in snapshots:
        records = load_snapshot(path)
        hit = next((r for r in records if key in (r.identity.run_key, r.identity.group_key)), None)
        if hit is not None:
            group = hit.identity.group_key
            runs = [r for r in records if r is hit or (group and r.identity.group_key == group)]
            return hit, runs, path
    where = ", ".join(str(p) for p in snapshots) or "no snapshot files"
    raise FsarError(f"no leaderboard row has run key or group key {key!r} (searched {where})",
                    "copy the key from the leaderboard's runs snapshot, or pass --runs FILE")


LEGACY = ("the row predates recorded run arguments (record field `spec`): its command is rebuilt from its identity, "
          "so a --set, --recipe, --no-cache or --lr it had is not re-applied (a group key differing below tells)")


def reproduce_spec(rec: Any, seed: str) -> Any:
    """The row's command (its recorded `spec`, else rebuilt from its identity: `legacy_spec`) with
    another training seed."""
    from dataclasses import replace

    from fsar_bench.engine.runner import RunSpec

    if not rec.identity.spec:
        return legacy_spec(rec, seed)
    spec = RunSpec.from_arguments(rec.identity.spec)
    return replace(spec, train={**spec.train, "seed": seed})


def legacy_spec(rec: Any, seed: str) -> Any:
    """The RunSpec of a row written before records held their arguments, rebuilt from its identity:
    frames, matcher and episode seed are passed when they differ from the defaults."""
    from fsar_bench.data.cards import get_card
    from fsar_bench.engine.runner import RunSpec
    from fsar_bench.registry import method_class

    i = rec.identity
    cls = method_class(i.method)
    default_matcher = getattr(cls, "default_matcher", "")
    preset_frames = (getattr(cls, "presets", {}).get(i.preset) or {}).get("frames")
    frames = i.frames if i.frames and preset_frames and i.frames != preset_frames else None  # as the row's command
    episode_seed = i.episode_seed if i.episode_seed and i.episode_seed != get_card(i.dataset).seeds["test"] else None
    train = {"seed": seed}
    if i.trained and i.train_steps:
        train["steps"] = int(i.train_steps)
    return RunSpec(method=i.method, dataset=i.dataset, way=i.way, shot=i.shot, query=i.query, episodes=i.episodes,
                   preset=i.preset or None, matcher=i.matcher if i.matcher and i.matcher != default_matcher else None,
                   overrides=dict(i.overrides or {}), frames=frames,
                   train_dataset=i.train_dataset if i.train_dataset != i.dataset else None, train=train,
                   no_train=not i.trained, episode_seed=episode_seed)


def new_seed(runs: list[Any]) -> str:
    """The first seed of the row's sequence (S, S.1, S.2, ...) that the row does not hold."""
    from fsar_bench.engine.replicates import replicate_seeds

    held = {r.identity.train_seed for r in runs if r.identity.train_seed}
    base = sorted(held, key=len)[0] if held else "0"
    candidates = replicate_seeds(base, len(held) + 2)
    return next(s for s in candidates if s not in held and (held or s != base))


def row_interval(runs: list[Any], confidence: float = 0.95) -> tuple[float, float, str]:
    """(low, high, what) of the row: the prediction interval of a new replicate (R >= 2), else the
    single run's episode-sampling CI."""
    import statistics

    from fsar_bench.results.groups import t_quantile

    accs = [float(r.results.accuracy) for r in runs if math.isfinite(r.results.accuracy)]
    if len(accs) >= 2:
        mean, sd, n = statistics.fmean(accs), statistics.stdev(accs), len(accs)
        half = t_quantile(0.5 + confidence / 2, n - 1) * sd * math.sqrt(1 + 1 / n)
        return mean - half, mean + half, f"between-seed {confidence:.0%} prediction interval of {n} seeds"
    if not accs:
        raise FsarError("the row has no accuracy", "re-export the snapshot with `fsar-bench leaderboard --save-runs`")
    ci = runs[0].results.ci95
    return accs[0] - ci, accs[0] + ci, "episode-sampling CI only: 1 seed, training variance unmeasured"


def reproduce(
    run_key: str = typer.Argument(..., help="run key (or group key) of a leaderboard row, as in the runs snapshot"),
    runs: list[Path] = typer.Option([], "--runs", help="runs snapshot to search (repeatable; default: "
                                    "leaderboards/runs/*.json under the working directory)"),
    seed: Optional[str] = typer.Option(None, help="training seed of the new replicate (default: the next seed of "
                                       "the row's sequence it does not hold)"),
    config: Optional[Path] = typer.Option(None, help="bench.yaml to read (default ./bench.yaml)"),
    results_dir: Optional[Path] = typer.Option(None, help="where run folders go (default fsar-runs)"),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow tracking URI"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON document on stdout and nothing else"),
) -> None:
    """Re-run one leaderboard row as a new replicate; is its accuracy inside the row's interval?

    Examples:

    \b
      fsar-bench reproduce 23d8d6c2c89d
      fsar-bench reproduce 23d8d6c2c89d --runs leaderboards/runs/toy-appearance.json --seed 7
    """
    from fsar_bench.cli.run_cmd import cli_config
    from fsar_bench.engine.runner import execute
    from fsar_bench.ui import json_document, stage_progress, stdout_to_stderr

    snapshots = list(runs) or sorted(Path("leaderboards/runs").glob("*.json"))
    rec, group, path = find_row(run_key, snapshots)
    cfg = cli_config(config, results_dir, tracking_uri)
    new = seed or new_seed(group)
    spec = reproduce_spec(rec, new)
    low, high, what = row_interval(group)
    log = (lambda s: print(s, flush=True)) if not json_out else (lambda s: None)
    log(f"reproducing {path.name} row {rec.identity.method} {rec.identity.dataset} {rec.identity.setting} "
        f"({len(group)} seed(s)) with new seed {new}")
    if not rec.identity.spec:
        log(LEGACY)
    with stdout_to_stderr(json_out), stage_progress() as progress:
        result = execute(spec, cfg, progress=progress, log=log)
    acc = float(result.summary["accuracy"])
    inside = low <= acc <= high
    same_group = result.summary.get("group_key") == rec.identity.group_key
    doc = {"row_run_key": rec.identity.run_key, "group_key": rec.identity.group_key, "snapshot": str(path),
           "new_group_key": result.summary.get("group_key"), "same_group": same_group,
           "spec_recorded": bool(rec.identity.spec),
           "row_seeds": [r.identity.train_seed for r in group], "row_accuracies": [r.results.accuracy for r in group],
           "interval": [low, high], "interval_kind": what, "seed": new, "accuracy": acc, "inside": inside,
           "run_dir": str(result.run_dir), "run_key": result.summary.get("run_key")}
    if json_out:
        json_document(doc)
        return
    verdict = "INSIDE" if inside else "OUTSIDE"
    typer.echo(f"new replicate (seed {new}): {acc:.2f} % -> {verdict} the row's {what} [{low:.2f}, {high:.2f}]")
    if not same_group:
        typer.echo(f"  group key {result.summary.get('group_key')} differs from the row's {rec.identity.group_key}: "
                   "the code, data or configuration is not the row's (compare summary.json code, data_version, "
                   "hparams and spec)")
    if not inside:
        typer.echo("  the code, data or hardware class may differ from the row's (compare the run's summary.json "
                   "code, data_version and hardware_class with the row)")


def register(app: typer.Typer) -> None:
    app.command(name="reproduce")(reproduce)
