"""`fsar-bench list methods|matchers|datasets`."""

from __future__ import annotations

import functools
from typing import Any

import typer

app = typer.Typer(help="List registered methods, matchers and datasets (--json: one JSON document).\n\n"
                  "Examples:\n\n"
                  "\b\n"
                  "  fsar-bench list methods\n"
                  "  fsar-bench list matchers\n"
                  "  fsar-bench list datasets --json",
                  no_args_is_help=True)


JSON_HELP = "print one JSON document (a list of rows) on stdout instead of the table"


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*r)
    Console(width=200).print(table)


@functools.lru_cache(maxsize=1)
def _own_distribution() -> str:
    """The distribution that installs fsar_bench (its entry points are the built-in ones). Cached:
    `packages_distributions` reads every installed distribution's file list (~1 s per call), and a
    listing asks once per row."""
    from importlib.metadata import packages_distributions

    return (packages_distributions().get("fsar_bench") or ["fsar-bench"])[0]


def origin_of(entry_origin: str) -> tuple[str, str]:
    """('built-in' | 'plugin' | 'runtime', the distribution 'name version' or '') of an entry."""
    if entry_origin in ("runtime", "unknown"):
        return ("runtime" if entry_origin == "runtime" else "plugin"), ""
    dist = entry_origin.split(" ", 1)[0]
    own = _own_distribution()
    same = dist.replace("_", "-").lower() == own.replace("_", "-").lower()
    return ("built-in" if same else "plugin"), entry_origin


def _emit(json_out: bool, title: str, rows: list[dict[str, Any]]) -> None:
    if json_out:
        from fsar_bench.ui import json_document

        json_document(rows)
    else:
        _table(title, list(rows[0]) if rows else ["name"], [[str(v) for v in r.values()] for r in rows])


@app.command()
def methods(json_out: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Registered methods: origin (built-in, or plugin with its package), status, presets, default
    matcher; plugins that fail to import are shown as unavailable with the reason.

    Example:

    \b
      fsar-bench list methods --json
    """
    from fsar_bench.registry import method_class, method_entries

    rows = []
    for name, entry in method_entries().items():
        origin, package = origin_of(entry.origin)
        try:
            cls = entry.load()
            status = "ok"
            detail = f"presets: {', '.join(cls.presets)}; default matcher: {cls.default_matcher}"
            labels = list(method_class(name).card().labels)
            detail += "".join(f"; {label}" for label in labels)
            extra = {"presets": list(cls.presets), "default_matcher": cls.default_matcher, "labels": labels}
        except Exception:  # noqa: BLE001
            status, detail = "unavailable", entry.error or "failed to load"
            extra = {"presets": [], "default_matcher": "", "labels": []}
        row = {"name": name, "origin": origin, "package": package, "target": entry.target, "status": status,
               "details": detail}
        rows.append({**row, **extra} if json_out else row)
    _emit(json_out, "methods", rows)


@app.command()
def matchers(json_out: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Registered matchers: origin (built-in, or plugin with its package), status, hyperparameters
    (set them with `--set matcher.KEY=VALUE`).

    Example:

    \b
      fsar-bench list matchers --json
    """
    import inspect

    from fsar_bench.registry import matcher_entries

    rows = []
    for name, entry in matcher_entries().items():
        origin, package = origin_of(entry.origin)
        hparams: list[str] = []
        try:
            cls = entry.load()
            status, detail = "ok", (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
            for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
                if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "dim":
                    hparams.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
        except Exception:  # noqa: BLE001
            status, detail = "unavailable", entry.error or "failed to load"
        rows.append({"name": name, "origin": origin, "package": package, "status": status,
                     "hyperparameters": hparams if json_out else ", ".join(hparams), "details": detail})
    _emit(json_out, "matchers", rows)


@app.command()
def datasets(json_out: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Dataset cards with class and video counts read from their split lists.

    Example:

    \b
      fsar-bench list datasets --json
    """
    from fsar_bench.data.cards import get_card, list_cards

    rows = []
    for name in list_cards():
        card = get_card(name)
        row: dict[str, Any] = {"name": name, "kind": "toy (generated)" if card.is_toy else "real",
                               "modality": card.modality}
        for split in ("train", "val", "test"):
            if split in card.split_files:
                s = card.split(split)
                row[split] = {"classes": len(s.by_class), "videos": len(s)} if json_out else \
                    f"{len(s.by_class)} / {len(s)}"
            else:
                row[split] = None if json_out else "-"
        rows.append(row)
    _emit(json_out, "datasets (classes / videos)", rows)
