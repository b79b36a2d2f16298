"""User-facing errors.

Anything the user can fix (a bad flag, a missing file, an unknown name) is raised as
`FsarError`: the CLI prints its one-line message and exits with code 2. Everything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class FsarError(Exception):
    """A problem the user can fix; the message names the problem and the fix, on one line."""

    exit_code = 2

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem if not fix else f"{problem}; {fix}")


def suggest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """A 'did you mean' fragment for `name` among `choices` ('' when nothing is close)."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return ""


def _split_kind(kind: str) -> tuple[str, str]:
    """'preset of method 'x'' -> ('preset', "of method 'x'"): the noun, then where it lives."""
    cuts = [i for i in (kind.find(" of "), kind.find(" in ")) if i > 0]
    return (kind[:min(cuts)], kind[min(cuts) + 1:]) if cuts else (kind, "")


def unknown(kind: str, name: str, choices: Iterable[str], how_to_list: str = "", where: str = "") -> FsarError:
    """The standard error for an unknown name, with suggestions and the full list.

    `where` follows the kind: unknown("preset", "tinyy", presets, where="of method 'protonet'")
    -> "unknown preset 'tinyy' of method 'protonet'; did you mean 'tiny'? known presets: full, tiny"."""
    if kind.endswith(",") and not where:  # the older spelling unknown("preset of method 'x',", ...)
        kind, where = _split_kind(kind.rstrip(","))
    choices = sorted(set(choices))
    hint = suggest(name, choices) if len(name) <= 200 else ""  # difflib is quadratic in the length
    listing = ", ".join(choices) if len(choices) <= 20 else how_to_list or f"{len(choices)} known"
    fix = (hint + " " if hint else "") + f"known {kind}s: {listing}"
    shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:66] + f"...({len(name):,} chars)"
    return FsarError(f"unknown {kind} {shown}" + (f" {where}" if where else ""), fix)
