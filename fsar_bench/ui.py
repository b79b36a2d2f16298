"""Terminal output helpers (rich progress bars that degrade to nothing when not on a terminal)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

ECHO_LIMIT = 80  # characters of a user-given value echoed back in an error
LINE_LIMIT = 600  # characters of each part (problem, fix) of an error line


def clip(value: Any, limit: int = ECHO_LIMIT) -> str:
    """repr(value), cut to `limit` characters: an error echoes what it refuses without flooding the
    terminal (a 40,000-character --set value once made a 40,084-character error line)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 3 * limit:
        return f"<an integer of about {int(value.bit_length() * 0.30103):,} digits>"  # repr would raise over 4300
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 14]}...({len(text):,} chars)"


def one_line(text: str, limit: int = LINE_LIMIT) -> str:
    """`text` on one line (newlines folded) of at most about `limit` characters."""
    flat = " ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return flat if len(flat) <= limit else f"{flat[:limit]}... ({len(flat):,} chars in all)"


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """Yields update(done, total); draws a rich bar on a terminal, stays quiet otherwise."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True) as prog:
        task = prog.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            prog.update(task, completed=done, total=total)

        yield update


@contextlib.contextmanager
def stage_progress() -> Iterator[Callable[[str, int, int], None]]:
    """Yields update(stage, done, total): one rich bar per stage on a terminal, sparse lines otherwise."""
    if not sys.stderr.isatty():
        last: dict[str, int] = {}

        def plain(stage: str, done: int, total: int) -> None:
            step = max(1, total // 4)
            if done == total or done - last.get(stage, -step) >= step:
                print(f"  {stage}: {done}/{total}", file=sys.stderr, flush=True)
                last[stage] = done

        yield plain
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description:<32}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn()) as prog:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = prog.add_task(stage, total=total)
            prog.update(tasks[stage], completed=done, total=total)

        yield update


def print_summary(summary: dict) -> None:
    """The result of a run: accuracy with its 95% CI, and what it was measured on."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary['method']} ({summary['matcher']}) on {summary['dataset']} {summary['setting']}",
                  show_header=False)
    table.add_row("accuracy", f"{summary['accuracy']:.2f} ± {summary['ci95']:.2f} % (95% CI, "
                  f"{summary['episodes']} episodes)")
    table.add_row("episodes", f"{'canonical' if summary['canonical'] else 'NON-CANONICAL'} digest "
                  f"{summary['episode_digest'][:16]}")
    table.add_row("weights", summary["weights_source"])
    table.add_row("parameters", f"{summary['params_total'] / 1e6:.2f} M total, "
                  f"{summary['params_trainable'] / 1e6:.2f} M trainable")
    for key, label in (("flops_per_video", "FLOPs / video"), ("flops_per_episode", "FLOPs / episode")):
        if key in summary:
            table.add_row(label, f"{summary[key] / 1e9:.2f} G")
    if "latency_ms_median" in summary:
        table.add_row("latency / episode", f"{summary['latency_ms_median']:.1f} ms median, "
                      f"{summary['latency_ms_p90']:.1f} ms p90")
    if "peak_memory_mb" in summary:
        table.add_row("peak memory", f"{summary['peak_memory_mb']:.0f} MB")
    table.add_row("training", f"{summary['train_steps']} episodes in {summary['train_seconds']:.0f} s"
                  + (f"; best val {summary['val_best']:.1f}% at step {summary['val_best_step']}"
                     if summary.get("val_best", -1) >= 0 else ""))
    table.add_row("evaluation", f"{summary['eval_seconds']:.1f} s")
    if summary.get("per_class"):
        from fsar_bench.results.per_class import summary_line

        weak, _, strong = summary_line(summary["per_class"]).partition(" | ")
        table.add_row("classes (acc %)", f"{weak}\n{strong}")
    table.add_row("mlflow run", summary.get("mlflow_run_id") or "-")
    Console().print(table)
    print(f"accuracy {summary['accuracy']:.2f} +- {summary['ci95']:.2f}")


@contextlib.contextmanager
def stdout_to_stderr(active: bool = True) -> Iterator[None]:
    """With `--json`, stdout carries the JSON document alone: whatever the work prints (banners,
    library messages) goes to stderr meanwhile."""
    if not active:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


def json_document(obj: Any) -> None:
    """Print `obj` as one JSON document on stdout (what `--json` promises scripts and notebooks)."""
    import json

    def plain(value: Any) -> Any:  # numpy / torch scalars as numbers, paths and the rest as text
        item = getattr(value, "item", None)
        if callable(item):
            try:
                return item()
            except (TypeError, ValueError):
                pass
        return str(value)

    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=plain) + "\n")
    sys.stdout.flush()


def help_width() -> dict[str, int]:
    """click context settings that let `--help` use the whole terminal (click stops at 80 columns
    by default, even in a 160-column terminal); examples sit in `\\b` blocks, never re-wrapped."""
    import shutil

    return {"max_content_width": max(80, shutil.get_terminal_size().columns)}


def plural(count: int, noun: str, many: str | None = None) -> str:
    """'1 check', '2 checks' (`many` for irregular plurals): no hand-made 'check(s)'."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"
