"""`fsar-bench sweep nway|shot|frames|cross-dataset|efficiency`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def sweep(
    kind: str = typer.Argument(..., help="nway | shot | frames | cross-dataset | efficiency (suites in bench.yaml)"),
    method: str = typer.Option("protonet", help="method to sweep (efficiency: the suite's method list)"),
    dataset: str = typer.Option("toy-motion", "--dataset", "-d", help="test dataset (cross-dataset: from the suite)"),
    preset: Optional[str] = typer.Option(None, help="method preset (default: tiny on toy data, full on real data)"),
    matcher: Optional[str] = typer.Option(None, help="swap the matcher"),
    episodes: Optional[int] = typer.Option(None, help="test episodes per point (canonical: 10000)"),
    steps: Optional[int] = typer.Option(None, help="training episodes per trained point"),
    set_: list[str] = typer.Option([], "--set", help="method hyperparameter override KEY=VALUE (repeatable); the "
                                   "matcher's as matcher.KEY=VALUE"),
    retrain: bool = typer.Option(False, help="N-way/shot sweeps: train every point instead of re-scoring"),
    seed: list[str] = typer.Option([], "--seed", help="training seed; repeatable: every point becomes a replicate "
                                   "group of these seeds (as for run)"),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="every point a group of N replicates (seeds S, S.1, "
                                        "...; N-way/shot sweeps train each seed once and re-score it): the table "
                                        "and plot show the group mean and hierarchical 95% CI"),
    plot_dir: Optional[Path] = typer.Option(None, help="where the plot goes (default <results_dir>/sweeps)"),
    config: Optional[Path] = typer.Option(None, help="bench.yaml to read"),
    results_dir: Optional[Path] = typer.Option(None, help="where run folders go"),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow tracking URI"),
    launcher: str = typer.Option("local", help="local (this process runs every point) or submitit (each point "
                                 "a cluster job; bench.yaml launcher: section, docs/cluster.md)"),
) -> None:
    """Run an experiment suite: one MLflow parent run, a child run per point, and a plot.

    With --seeds N every point is a replicate group (nested under the sweep's parent run).
    Sweep points are listed apart on leaderboards: run a configuration with `fsar-bench run` to rank it.

    Examples:

    \b
      fsar-bench sweep nway --method protonet --dataset toy-motion
      fsar-bench sweep nway --method protonet --dataset toy-motion --seeds 3
      fsar-bench sweep frames --method dmgal_ft --dataset ssv2_small
      fsar-bench sweep cross-dataset --method i2st
      fsar-bench sweep shot --method dmgal_ft --dataset ucf101 --launcher submitit
    """
    from fsar_bench.cli.run_cmd import check_method_inputs, cli_config, group_seeds, parse_sets, print_ui_hint
    from fsar_bench.validate import check_output_folder, check_run_numbers

    check_run_numbers(episodes=episodes, steps=steps)
    overrides = parse_sets(set_)
    if plot_dir is not None:
        check_output_folder(plot_dir, "--plot-dir")
    cfg = cli_config(config, results_dir, tracking_uri)
    seed_list = group_seeds(seed, seeds, cfg)  # None: one plain run per point
    from fsar_bench.engine.sweep import check_seeds_launcher
    from fsar_bench.launch import check_launcher

    check_seeds_launcher(seed_list, launcher)
    check_launcher(launcher, cfg)
    proto = cfg["protocol"]
    if kind != "efficiency":  # (efficiency sweeps take their methods from the suite)
        shots = cfg["sweeps"]["shot"].get("shots", []) if kind == "shot" else []
        source = f"sweeps.shot.shots in {cfg.source}" if shots else "protocol.shot"
        for shot in shots or [proto["shot"]]:  # a shot suite with 0 needs a zero-shot method
            check_method_inputs(method, shot, overrides, cfg, preset, source, matcher=matcher)
    from fsar_bench.engine.runner import RunSpec
    from fsar_bench.engine.sweep import run_sweep
    from fsar_bench.ui import stage_progress

    base = RunSpec(method=method, dataset=dataset, way=proto["way"], shot=proto["shot"], query=proto["query"],
                   episodes=proto["test_episodes"] if episodes is None else episodes, preset=preset, matcher=matcher,
                   overrides=overrides, train={k: v for k, v in {"steps": steps, "seed": seed[0] if seed else None
                                                                 }.items() if v is not None})
    with stage_progress() as progress:
        result = run_sweep(kind, base, cfg, retrain=retrain, plot_dir=plot_dir, progress=progress, launcher=launcher,
                           seeds=seed_list)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{kind} sweep (MLflow parent run {result.parent_run_id})")
    for col in ("point", "accuracy (95% CI)", "seeds", "episodes", "canonical", "trained"):
        table.add_column(col)
    for p in result.points:
        s = p.result.summary
        acc, ci, kind_ci = p.accuracy()
        table.add_row(p.label, f"{acc:.2f} ± {ci:.2f}" + (" (seeds + episodes)" if kind_ci == "hierarchical" else ""),
                      str(len(p.runs)), str(s["episodes"]), "yes" if s["canonical"] else "no",
                      "yes" if s["train_steps"] else "re-scored")
    Console().print(table)
    if result.plot:
        print(f"plot: {result.plot}")
    print_ui_hint(cfg)


def register(app: typer.Typer) -> None:
    app.command(name="sweep")(sweep)
