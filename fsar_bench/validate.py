"""Checks of user input made before any work starts (nothing loaded, trained or written yet).

Each check raises `FsarError` (one line: the problem, then the fix; exit code 2 in the CLI) and
has no side effect: no folder is created, no file written, no MLflow store opened. They are pure
functions of their arguments and the file system, so the CLI calls them first and a failure
leaves nothing half-written behind.
"""

from __future__ import annotations

import inspect
import math
import os
import re
import typing
from collections import abc
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fsar_bench.errors import FsarError, suggest, unknown
from fsar_bench.ui import clip


# -- numbers -----------------------------------------------------------------------------------------
def check_int(flag: str, value: int | None, minimum: int, example: int, what: str = "") -> None:
    """`flag` (e.g. '--way') is unset or an integer >= minimum."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        meaning = f" ({what})" if what else ""
        raise FsarError(f"{flag} {clip(value)} is out of range{meaning}",
                        f"pass an integer >= {minimum}, e.g. {flag} {example}")


def check_positive_number(flag: str, value: float | None, example: str) -> None:
    """`flag` is unset or a finite number > 0 (NaN and inf are refused)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise FsarError(f"{flag} {clip(value)} is not a finite number > 0", f"pass e.g. {flag} {example}")


def check_run_numbers(*, way: int | None = None, shot: int | None = None, query: int | None = None,
                      episodes: int | None = None, steps: int | None = None, frames: int | None = None,
                      episode_batch: int | None = None, lr: float | None = None, nproc: int | None = None) -> None:
    """The numeric options of `run` (and `sweep`), each in its meaningful range."""
    check_int("--way", way, 1, 5, "classes per episode")
    check_int("--shot", shot, 0, 1, "support videos per class; 0 = zero-shot")
    check_int("--query", query, 1, 1, "query videos per class")
    check_int("--episodes", episodes, 1, 10_000, "test episodes")
    check_int("--steps", steps, 0, 500, "training episodes; 0 = no training")
    check_int("--frames", frames, 1, 8, "frames per video")
    check_int("--episode-batch", episode_batch, 1, 500, "episodes per matcher call")
    check_int("--nproc", nproc, 1, 2, "processes on this machine")
    check_positive_number("--lr", lr, "1e-3")


# -- methods ---------------------------------------------------------------------------------------
def check_zero_shot(method: str, cls: type, shot: int, source: str = "--shot 0") -> None:
    """`--shot 0` only for methods that declare a zero-shot path (`Method.zero_shot = True`); the
    others would score episodes without supports as a constant (chance accuracy, CI 0)."""
    if shot == 0 and not getattr(cls, "zero_shot", False):
        fix = "pass --shot 1 or more" if source == "--shot 0" else f"remove 0 from {source}"
        raise FsarError(f"method {method!r} has no zero-shot path ({source}; it needs support videos)",
                        f"{fix}, or use a zero-shot method (`fsar-bench list methods`)")


_POSITIVE_HPARAMS = ("frames", "image_size")  # Method.__init__'s own: a video has >= 1 frame of >= 1 pixel


def _accepts(value: Any, hint: Any) -> bool:
    """Whether `value` (parsed from YAML) fits the annotation `hint`; unknown annotations accept."""
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    if hint is type(None) or hint is None:
        return value is None
    origin = typing.get_origin(hint)
    if origin is typing.Union or type(hint).__name__ == "UnionType":
        return any(_accepts(value, h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin in (list, tuple, set, frozenset, abc.Sequence, abc.Set) or hint in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin in (dict, abc.Mapping) or hint is dict:
        return isinstance(value, dict)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Union or type(hint).__name__ == "UnionType":
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _hints(cls: type) -> dict[str, Any]:
    """Annotations of `cls.__init__`'s keywords; from the defaults' types when annotations are absent
    or unresolvable (a plugin's forward references must not break a run)."""
    params = inspect.signature(cls.__init__).parameters
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # noqa: BLE001
        hints = {}
    out = {}
    for name, p in params.items():
        if name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        if name in hints:
            out[name] = hints[name]
        elif p.default is not inspect.Parameter.empty and p.default is not None:
            out[name] = float if type(p.default) is float else type(p.default)
    return out


MATCHER_PREFIX = "matcher."  # --set matcher.gamma=0.5: a hyperparameter of the matcher (registry.MATCHER_PREFIX)


def _init_params(cls: type) -> list[str]:
    return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]


def check_overrides(method: str, cls: type, overrides: Mapping[str, Any], source: str = "--set",
                    matcher: str | None = None) -> None:
    """Values of hyperparameter overrides against the types `cls.__init__` declares, plus the ranges
    every method shares (frames, image_size >= 1) and finite floats. Keys `matcher.<key>` are
    checked against the matcher's class (`matcher`, default the method's `default_matcher`); a
    matcher's keyword given without the prefix gets an error naming the prefixed form."""
    matcher = matcher or getattr(cls, "default_matcher", "") or ""
    prefixed = {k[len(MATCHER_PREFIX):]: v for k, v in overrides.items() if k.startswith(MATCHER_PREFIX)}
    if prefixed:
        check_matcher_overrides(matcher, prefixed, source)
    overrides = {k: v for k, v in overrides.items() if not k.startswith(MATCHER_PREFIX)}
    _check_values(method, cls, overrides, source, "method", matcher)


def _matcher_params(matcher: str) -> list[str]:
    """The keywords of matcher `matcher`'s class ([] when it cannot be loaded)."""
    from fsar_bench.registry import matcher_class

    try:
        return _init_params(matcher_class(matcher))
    except FsarError:
        return []


def check_matcher_overrides(matcher: str, overrides: Mapping[str, Any], source: str = "--set") -> None:
    """Matcher hyperparameters (`--set matcher.<key>=<value>`, prefix removed) against the keywords
    and annotations of the matcher class's `__init__`."""
    from fsar_bench.registry import matcher_class

    _check_values(matcher, matcher_class(matcher), overrides, source, "matcher")


def _check_values(name: str, cls: type, overrides: Mapping[str, Any], source: str, kind: str,
                  matcher: str = "") -> None:
    """Names and values of `overrides` against `cls.__init__` (`kind` 'method' or 'matcher')."""
    hints = _hints(cls)
    params = inspect.signature(cls.__init__).parameters
    open_ended = any(p.kind is p.VAR_KEYWORD for p in params.values())
    prefix = MATCHER_PREFIX if kind == "matcher" else ""
    origin = f" ({source})" if source != "--set" else ""
    for key, value in overrides.items():
        if not open_ended and key not in params or key == "self":
            if kind == "method" and key in ("matcher_kwargs", "matcher"):
                raise FsarError(f"{key!r} is not a hyperparameter of method {name!r}",
                                "pick the matcher with --matcher NAME and set each of its hyperparameters with "
                                "--set matcher.KEY=VALUE (docs/plugins.md)")
            if kind == "method" and matcher and key in _matcher_params(matcher):
                raise FsarError(f"{key!r} is a hyperparameter of matcher {matcher!r}, not of method {name!r}",
                                f"write it as --set {MATCHER_PREFIX}{key}={clip(value)}")
            if kind == "matcher":  # suggestions among the bare names (the shared prefix would match them all)
                known = [p for p in params if p != "self" and p != "dim"]
                close = suggest(key, known)
                raise FsarError(f"unknown hyperparameter {clip(prefix + key)} of matcher {name!r}{origin}",
                                (close.replace("'", f"'{prefix}", 1).replace(" or '", f" or '{prefix}") + " "
                                 if close else "") + "known: " + (", ".join(prefix + p for p in known) or "none"))
            raise unknown("hyperparameter", key, [p for p in params if p != "self"], where=f"of {kind} {name!r}{origin}")
        key_shown = prefix + key
        shown = f"{source} {key_shown}={clip(value)}" if source == "--set" else f"{key_shown}: {clip(value)} in {source}"
        if isinstance(value, float) and not math.isfinite(value):
            raise FsarError(f"{shown} is not a finite number", f"pass a finite value for {key_shown}")
        if key in hints and not _accepts(value, hints[key]):
            raise FsarError(f"{shown} is not {_describe(hints[key])} (hyperparameter {key} of {kind} {name})",
                            f"pass {_describe(hints[key])}, e.g. {key_shown}={clip(cls_default(cls, key))}")
        if kind == "method" and key in _POSITIVE_HPARAMS and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise FsarError(f"{shown} is out of range", f"pass an integer >= 1, e.g. {key}={cls_default(cls, key)}")


def cls_default(cls: type, key: str) -> Any:
    """The default of keyword `key` of `cls.__init__` (for examples in error messages)."""
    p = inspect.signature(cls.__init__).parameters.get(key)
    return None if p is None or p.default is inspect.Parameter.empty else p.default


# -- files ---------------------------------------------------------------------------------------------
def _existing_ancestor(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def writable_folder_problem(folder: Path) -> str | None:
    """Why files cannot be created in `folder` (created on demand), or None when they can."""
    base = _existing_ancestor(folder)
    if not base.is_dir():
        return f"{base} is a file, not a folder"
    if not os.access(base, os.W_OK | os.X_OK):
        return f"{base} is not writable"
    return None


def check_output_file(path: Path, flag: str) -> None:
    """`path` can be written as a file: not an existing folder, and its folder is (or can be
    created) writable. Checked before the work that produces the file."""
    path = Path(path)
    if path.is_dir():
        raise FsarError(f"{flag} {path} is an existing folder", f"pass a file name, e.g. {flag} {path / 'out'}")
    if path.exists() and not os.access(path, os.W_OK):
        raise FsarError(f"{flag} {path} exists and is not writable", f"pass another {flag} or fix its permissions")
    why = writable_folder_problem(path.parent)
    if why:
        raise FsarError(f"cannot write {flag} {path}: {why}", f"pass {flag} in a writable folder")


def check_output_folder(folder: Path, flag: str) -> None:
    """Files can be created in `folder` (created on demand): it is not a file, and writable."""
    why = writable_folder_problem(Path(folder))
    if why:
        raise FsarError(f"cannot write to {flag} {folder}: {why}", f"pass {flag} a writable folder")


# -- MLflow tracking URIs ----------------------------------------------------------------------------
DB_SCHEMES = ("postgresql", "mysql", "mssql")  # SQLAlchemy stores (optionally "+driver")
REMOTE_SCHEMES = ("http", "https", "databricks")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")


def _sqlite_for(path: str) -> str:
    p = path.rstrip("/") or "."
    return f"sqlite:///{p if p.endswith('.db') else p + '/mlflow.db'}"


def check_tracking_uri(uri: str, *, write: bool = True, origin: str = "--tracking-uri") -> None:
    """An MLflow tracking URI fsar-bench can log to, checked before the run folder exists.

    sqlite:///PATH: its folder must be writable (created on demand) when `write`; http(s),
    databricks and SQLAlchemy database URIs (postgresql, mysql, mssql) are accepted as they are
    (a remote server is probed later, still before training); `file:` and plain paths are refused:
    MLflow 3.17 no longer opens file stores (unless MLFLOW_ALLOW_FILE_STORE=true); anything else
    is an unknown scheme."""
    where = f"MLflow tracking URI {clip(uri)} (from {origin})"
    match = _SCHEME.match(uri)
    scheme = match.group(1).lower() if match and len(match.group(1)) > 1 else ""  # 'C:' is a drive
    if uri in ("databricks", "databricks-uc"):  # MLflow's names for a Databricks workspace
        return
    if scheme in ("", "file"):
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() in ("1", "true"):
            return
        path = re.sub(r"^file:(//)?", "", uri) if scheme else uri
        raise FsarError(f"{where} is a file store, which MLflow 3.17 refuses",
                        f"use a SQLite store, e.g. {clip(_sqlite_for(path), 200)}")
    if scheme == "sqlite":
        if not uri.startswith("sqlite:///") or len(uri) == len("sqlite:///"):
            raise FsarError(f"{where} names no database file", "write it as sqlite:///PATH/mlflow.db")
        db = Path(uri[len("sqlite:///"):].split("?", 1)[0])
        if db.is_dir():
            raise FsarError(f"{where} points to the folder {db}", f"name a file in it: sqlite:///{db / 'mlflow.db'}")
        if not write:
            return
        why = writable_folder_problem(db.parent) if not db.exists() else (
            None if os.access(db, os.W_OK) else f"{db} is not writable")
        if why:
            raise FsarError(f"{where} cannot be written: {why}",
                            "point it to a writable folder, e.g. sqlite:///fsar-runs/mlflow.db")
        return
    if scheme in REMOTE_SCHEMES or scheme.split("+", 1)[0] in DB_SCHEMES or scheme.startswith("databricks"):
        return
    raise FsarError(f"{where} has the unknown scheme {clip(scheme + ':', 40)}",
                    "use sqlite:///PATH/mlflow.db (local), http(s)://HOST:PORT (server) or a "
                    "postgresql/mysql/mssql database URI")
