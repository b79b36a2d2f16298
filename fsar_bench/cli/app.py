"""Mounts the command groups on one typer app."""

from __future__ import annotations

import typer

from fsar_bench.cli import (
    check_cmd, compare_cmd, data_cmd, episodes_cmd, eval_cmd, leaderboard_cmd, listing, plot_cmd, profile_cmd,
    run_cmd, status_cmd, sweep_cmd,
)

app = typer.Typer(
    name="fsar-bench",
    help="Benchmark harness for few-shot action recognition.\n\n"
    "Examples:\n\n"
    "\b\n"
    "  fsar-bench run protonet --dataset toy-appearance --way 5 --shot 1\n"
    "  fsar-bench run dmgal_ft --dataset ucf101 --way 5 --shot 1\n"
    "  fsar-bench eval protonet --weights fsar-runs/RUN_FOLDER\n"
    "  fsar-bench list methods\n"
    "  fsar-bench data prepare toy-motion --root ./data/toy-motion\n"
    "  fsar-bench episodes verify\n"
    "  fsar-bench check-plugin my_method",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
app.add_typer(listing.app, name="list")
app.add_typer(data_cmd.app, name="data")
app.add_typer(episodes_cmd.app, name="episodes")
run_cmd.register(app)
eval_cmd.register(app)
sweep_cmd.register(app)
status_cmd.register(app)
profile_cmd.register(app)
compare_cmd.register(app)
from fsar_bench.cli import reproduce_cmd  # noqa: E402  (issue #17)

reproduce_cmd.register(app)
check_cmd.register(app)
leaderboard_cmd.register(app)
plot_cmd.register(app)
