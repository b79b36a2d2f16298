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


def unknown(kind: str, name: str, choices: Iterable[str], how_to_list: str = "") -> FsarError:
    """The standard error for an unknown name, with suggestions and the full list."""
    choices = sorted(set(choices))
    hint = suggest(name, choices)
    listing = ", ".join(choices) if len(choices) <= 20 else how_to_list or f"{len(choices)} known"
    fix = (hint + " " if hint else "") + f"known {kind}s: {listing}"
    return FsarError(f"unknown {kind} {name!r}", fix)
