"""`fsar-bench check-plugin NAME`: run a registered method or matcher through the contract checks."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from fsar_bench.cli.run_cmd import SET_HELP, parse_sets


def check_plugin(
    name: str = typer.Argument(..., help="registered method or matcher name (`fsar-bench list methods`, "
                               "`fsar-bench list matchers`)"),
    preset: str = typer.Option("tiny", help="method preset to build (random weights); 'tiny' runs in seconds on a CPU"),
    matcher: Optional[str] = typer.Option(None, help="method NAME: swap its matcher, e.g. otam"),
    method: Optional[str] = typer.Option(None, "--method", help="matcher NAME: check it under this registered "
                                         "method instead of the neutral host (frame features [B, T, D])"),
    patches: int = typer.Option(0, "--patches", help="matcher NAME under the neutral host: give it patch "
                                "features [B, T, P, D] with P = this (e.g. 4 for sca)"),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    seed: int = typer.Option(0, help="torch seed of the builds and of the random inputs"),
) -> None:
    """Check that method or matcher NAME honours the contract the evaluator relies on, on random inputs.

    Checks: card loads; the preset builds; embed shapes and dtypes; embed does not depend on the
    other videos of the batch (features are cached per video); logits [Q, way]; a batch of episodes
    scores like its episodes one by one; reordering the supports of a class does not change the
    logits; relabelling the classes permutes the logit columns; same seed, same logits; one training
    step (skipped when the preset does not train). A matcher is checked under a neutral host method
    (mean colour per frame through a linear layer) or under --method. Exit code 0 when no check
    fails, 1 otherwise.

    Examples:

    \b
      fsar-bench check-plugin protonet
      fsar-bench check-plugin my_method --preset tiny --matcher otam
      fsar-bench check-plugin my_matcher --set matcher.temperature=0.5
      fsar-bench check-plugin my_matcher --method protonet
      fsar-bench check-plugin sca --patches 4
    """
    from fsar_bench.contract import check_matcher, check_method, plugin_kind
    from fsar_bench.errors import FsarError
    from fsar_bench.ui import plural
    from fsar_bench.validate import check_int

    check_int("--patches", patches, 0, 4, "patches per frame")
    overrides = parse_sets(set_)
    kind = plugin_kind(name)
    if kind == "method" and (method or patches):
        raise FsarError(f"--method and --patches apply to matchers, and {name!r} is a method",
                        f"drop them, or pick its matcher with --matcher")
    if kind == "matcher" and matcher:
        raise FsarError(f"--matcher swaps a method's matcher, and {name!r} is a matcher",
                        f"check it under a method with --method METHOD (or drop --matcher)")
    if kind == "method":
        results = check_method(name, preset, matcher=matcher, overrides=overrides, seed=seed)
        what = f"method {name!r} (preset {preset}{', matcher ' + matcher if matcher else ''}"
    elif method:
        results = check_method(method, preset, matcher=name, overrides=overrides, seed=seed)
        what = f"matcher {name!r} (under method {method!r}, preset {preset}"
    else:
        results = check_matcher(name, overrides=overrides, patches=patches, seed=seed)
        feats = f"[B, T, {patches}, D]" if patches else "[B, T, D]"
        what = f"matcher {name!r} (under the neutral host method, features {feats}"
    typer.echo(f"contract checks of {what}, random weights, CPU)")
    rows = [("check", "result", "time", "detail")]
    rows += [(r.name, r.status.upper(), f"{r.seconds:.1f}s", r.detail) for r in results]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        typer.echo("  ".join([r[0].ljust(widths[0]), r[1].ljust(widths[1]), r[2].rjust(widths[2]), r[3]]).rstrip())
    failed = [r.name for r in results if r.status == "fail"]
    skipped = sum(r.status == "skip" for r in results)
    typer.echo(f"\n{len(results) - len(failed) - skipped} passed, {len(failed)} failed, {skipped} skipped")
    if failed and kind == "matcher" and not method and not patches:
        typer.echo("note: the neutral host gives frame features [B, T, D]; for a matcher of patch features "
                   "re-run with --patches 4, or under a method with --method METHOD")
    if failed:
        typer.echo(f"error: {kind} {name!r} fails {plural(len(failed), 'contract check')}: {', '.join(failed)}; "
                   "see the details above and docs/plugins.md", err=True)
        sys.exit(1)  # not typer.Exit: the console script runs click with standalone_mode=False


def register(app: typer.Typer) -> None:
    app.command(name="check-plugin")(check_plugin)
