"""`fsar-bench list methods|matchers|datasets`."""

from __future__ import annotations

import typer

app = typer.Typer(help="List registered methods, matchers and datasets.", no_args_is_help=True)


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*r)
    Console(width=200).print(table)


@app.command()
def methods() -> None:
    """Registered methods with their origin; plugins that fail to import are shown as unavailable."""
    from fsar_bench.registry import method_class, method_entries

    rows = []
    for name, entry in method_entries().items():
        try:
            cls = entry.load()
            status = "ok"
            detail = f"presets: {', '.join(cls.presets)}; default matcher: {cls.default_matcher}"
            detail += "".join(f"; {label}" for label in method_class(name).card().labels)
        except Exception:  # noqa: BLE001
            status, detail = "unavailable", entry.error or "failed to load"
        rows.append([name, entry.origin, entry.target, status, detail])
    _table("methods", ["name", "origin", "target", "status", "details"], rows)


@app.command()
def matchers() -> None:
    """Registered matchers with their origin."""
    from fsar_bench.registry import matcher_entries

    rows = []
    for name, entry in matcher_entries().items():
        try:
            cls = entry.load()
            status, detail = "ok", (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        except Exception:  # noqa: BLE001
            status, detail = "unavailable", entry.error or "failed to load"
        rows.append([name, entry.origin, status, detail])
    _table("matchers", ["name", "origin", "status", "details"], rows)


@app.command()
def datasets() -> None:
    """Dataset cards with class and video counts read from their split lists."""
    from fsar_bench.data.cards import get_card, list_cards

    rows = []
    for name in list_cards():
        card = get_card(name)
        counts = []
        for split in ("train", "val", "test"):
            if split in card.split_files:
                s = card.split(split)
                counts.append(f"{len(s.by_class)} / {len(s)}")
            else:
                counts.append("-")
        rows.append([name, "toy (generated)" if card.is_toy else "real", card.modality, *counts])
    _table("datasets (classes / videos)", ["name", "kind", "modality", "train", "val", "test"], rows)
