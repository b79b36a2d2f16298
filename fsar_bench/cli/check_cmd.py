"""`fsar-bench check-plugin NAME`: run a registered method through the contract checks."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from fsar_bench.cli.run_cmd import parse_sets


def check_plugin(
    name: str = typer.Argument(..., help="registered method name (`fsar-bench list methods`)"),
    preset: str = typer.Option("tiny", help="method preset to build (random weights); 'tiny' runs in seconds on a CPU"),
    matcher: Optional[str] = typer.Option(None, help="swap the method's matcher, e.g. otam"),
    set_: list[str] = typer.Option([], "--set", help="method hyperparameter override key=value (repeatable)"),
    seed: int = typer.Option(0, help="torch seed of the builds and of the random inputs"),
) -> None:
    """Check that method NAME honours the contract the evaluator relies on, on random inputs.

    Checks: card loads; the preset builds; embed shapes and dtypes; embed does not depend on the
    other videos of the batch (features are cached per video); logits [Q, way]; a batch of episodes
    scores like its episodes one by one; reordering the supports of a class does not change the
    logits; relabelling the classes permutes the logit columns; same seed, same logits; one training
    step (skipped when the preset does not train). Exit code 0 when no check fails, 1 otherwise.

    Examples:

      fsar-bench check-plugin protonet

      fsar-bench check-plugin my_method --preset tiny --matcher otam
    """
    from fsar_bench.contract import check_method

    results = check_method(name, preset, matcher=matcher, overrides=parse_sets(set_), seed=seed)
    typer.echo(f"contract checks of method {name!r} (preset {preset}{', matcher ' + matcher if matcher else ''}, "
               "random weights, CPU)")
    rows = [("check", "result", "time", "detail")]
    rows += [(r.name, r.status.upper(), f"{r.seconds:.1f}s", r.detail) for r in results]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        typer.echo("  ".join([r[0].ljust(widths[0]), r[1].ljust(widths[1]), r[2].rjust(widths[2]), r[3]]).rstrip())
    failed = [r.name for r in results if r.status == "fail"]
    skipped = sum(r.status == "skip" for r in results)
    typer.echo(f"\n{len(results) - len(failed) - skipped} passed, {len(failed)} failed, {skipped} skipped")
    if failed:
        typer.echo(f"error: method {name!r} fails {len(failed)} contract check(s): {', '.join(failed)}; "
                   "see the details above and the plugin section of the README", err=True)
        sys.exit(1)  # not typer.Exit: the console script runs click with standalone_mode=False


def register(app: typer.Typer) -> None:
    app.command(name="check-plugin")(check_plugin)
