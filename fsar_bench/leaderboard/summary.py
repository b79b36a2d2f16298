"""The table the papers print: methods as rows, (dataset, setting) as columns.

One reported row per (method, backbone, training dataset, re-run or not) with every paper and table
that prints it; a reproduced group sits right below the reported row of the method its card names
in `reported_as`, its cells giving the difference to that row. Flags become numbered notes, so no
cell is longer than a number. Only ranked reproduced groups appear here (the others are listed
apart in the per-setting sections).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import pandas as pd

from fsar_bench.leaderboard.build import Board, Leaderboard, method_card
from fsar_bench.leaderboard.reproduced import RankedRow

DASH = "–"
ONE_SEED_MARK = "†"


@dataclass
class Row:
    method: str
    backbone: str
    source: str
    cells: dict[str, str] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    notes: list[int] = field(default_factory=list)
    reproduced: bool = False


@dataclass
class Summary:
    table: pd.DataFrame
    numeric: list[str]  # right-aligned columns
    notes: list[str]  # footnote i+1
    one_seed: bool  # some reproduced cell is a single seed


def _short_table(table: str) -> str:
    """'DMGAL Table II' -> 'DMGAL II'."""
    return re.sub(r"\s+Table\s+", " ", table.strip())


def _column(b: Board, many: bool) -> str:
    return f"{b.dataset} {b.setting}" if many else b.setting


class _Notes:
    def __init__(self) -> None:
        self.items: list[str] = []

    def ref(self, text: str) -> int:
        if text not in self.items:
            self.items.append(text)
        return self.items.index(text) + 1


def _reported(boards: list[Board], many: bool, notes: _Notes) -> dict[tuple, Row]:
    rows: dict[tuple, Row] = {}
    sources: dict[tuple, list[str]] = {}
    for b in boards:
        if b.reported is None or b.reported.empty:
            continue
        col = _column(b, many)
        for r in b.reported.itertuples(index=False):
            key = (r.method, r.backbone, r.train_dataset, bool(r.own_implementation), r.paper if r.own_implementation
                   else "")
            label = f"{r.method} (re-run in {r.paper})" if r.own_implementation else r.method
            row = rows.setdefault(key, Row(label, r.backbone or DASH, ""))
            for t in str(r.source_table).split(", "):
                sources.setdefault(key, [])
                if _short_table(t) not in sources[key]:
                    sources[key].append(_short_table(t))
            if col in row.values and row.values[col] != r.accuracy:  # two papers print different numbers
                row.cells[col] = f"{row.cells[col]} / {r.accuracy:.1f}"
            else:
                row.values[col], row.cells[col] = float(r.accuracy), f"{r.accuracy:.1f}"
            for flag in filter(None, str(r.flags).split("; ")):
                if flag != "re-run by the citing paper":  # said by the label
                    n = notes.ref(flag)
                    if n not in row.notes:
                        row.notes.append(n)
    for key, row in rows.items():
        row.source = ", ".join(sources.get(key, []))
    return rows


def _group_label(r: RankedRow) -> tuple[tuple, str]:
    i = r.run.identity
    state = "" if i.train_steps else ", untrained"
    return (i.method, i.matcher, i.backbone, i.preset, i.weights, bool(i.train_steps)), f"{i.method} ({i.matcher}{state})"


def _cell(r: RankedRow) -> str:
    g = r.group
    ci = f" ± {g.ci95:.2f}" if math.isfinite(g.ci95) else ""
    return f"{g.accuracy:.2f}{ci}{ONE_SEED_MARK if g.seeds < 2 else ''}"


def _reproduced(boards: list[Board], many: bool, notes: _Notes) -> dict[tuple, Row]:
    rows: dict[tuple, Row] = {}
    for b in boards:
        col = _column(b, many)
        for r in [*b.sections.pretrained, *b.sections.random_init]:
            key, label = _group_label(r)
            i = r.run.identity
            row = rows.setdefault(key, Row(label, i.backbone or DASH, f"fsar-bench ({i.preset}, {i.weights})",
                                           reproduced=True))
            if col not in row.values:  # the best-ranked group of this configuration
                row.values[col], row.cells[col] = r.group.accuracy, _cell(r)
            for flag in r.group.flags:
                if not flag.startswith("1 seed"):
                    n = notes.ref(flag)
                    if n not in row.notes:
                        row.notes.append(n)
    return rows


def _order(row: Row, cols: list[str]) -> tuple:
    return (*(-row.values[c] if c in row.values else math.inf for c in cols), row.method)


def summarize(lb: Leaderboard) -> Summary | None:
    """The methods x settings table of `lb` (None when it has no row)."""
    boards = [b for b in lb.boards if b.setting]
    many = len({b.dataset for b in boards}) > 1
    cols = list(dict.fromkeys(_column(b, many) for b in boards))
    notes = _Notes()
    reported = _reported(boards, many, notes)
    reproduced = _reproduced(boards, many, notes)
    if not reported and not reproduced:
        return None
    ordered = sorted(reported.values(), key=lambda r: _order(r, cols))
    placed: set[tuple] = set()
    out: list[Row] = []
    for row in ordered:
        out.append(row)
        for key, mine in reproduced.items():
            card = method_card(key[0]).card
            names = [str(n) for n in getattr(card, "reported_as", None) or []]
            if key not in placed and row.method in names:
                placed.add(key)
                out.append(_versus(mine, row))
    rest = sorted((r for k, r in reproduced.items() if k not in placed), key=lambda r: _order(r, cols))
    out = rest + out if not reported else out + rest
    table = pd.DataFrame([{"method": r.method, "backbone": r.backbone,
                           **{c: r.cells.get(c, DASH) for c in cols},
                           "source": r.source, "notes": ", ".join(f"[{n}]" for n in sorted(r.notes)) or DASH}
                          for r in out])
    one_seed = any(ONE_SEED_MARK in v for c in cols for v in table[c])
    return Summary(table, cols, notes.items, one_seed)


def _versus(mine: Row, reported: Row) -> Row:
    """`mine` as a reproduction of `reported`: each cell also gives reproduced - reported."""
    row = Row(f"↳ {mine.method}", mine.backbone, mine.source, dict(mine.cells), dict(mine.values), mine.notes, True)
    for col, value in mine.values.items():
        if col in reported.values:
            row.cells[col] = f"{mine.cells[col]} ({value - reported.values[col]:+.1f})"
    return row
