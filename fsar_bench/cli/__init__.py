"""The `fsar-bench` command: a thin typer layer over the library (no logic of its own).

Each command group lives in its own module and is mounted here. User errors (`FsarError`) and
usage errors (unknown command or option, a value of the wrong type) print one line and exit
with code 2; Ctrl-C prints how to resume and exits with 130.

Usage errors are recognised by what they carry (`format_message()` and an integer `exit_code`),
not by their class: typer >= 0.2x raises its vendored `typer._click` exceptions, older typers the
standalone `click` ones, and `except click.ClickException` misses the former.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

INTERRUPTED = "interrupted; re-run the same command to resume"


class Interrupted(Exception):
    """Ctrl-C inside a command, re-raised under a name click does not turn into a bare exit code."""


def _guard(callback: Callable[..., Any]) -> Callable[..., Any]:
    import functools

    @functools.wraps(callback)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except KeyboardInterrupt as exc:  # the engine has already marked its MLflow run KILLED
            raise Interrupted() from exc

    return guarded


def _guard_interrupts(command: Any) -> None:
    """Wrap every command callback of the click tree so Ctrl-C reaches `main` (click >= 8.2 turns a
    KeyboardInterrupt into `Exit(130)`, click 8.1 into `Abort`, both without a message)."""
    if getattr(command, "callback", None) is not None:
        command.callback = _guard(command.callback)
    for sub in (getattr(command, "commands", None) or {}).values():
        _guard_interrupts(sub)


def _is_usage_error(exc: BaseException) -> bool:
    """A click/typer exception with a message (UsageError, BadParameter, ClickException), whichever
    click package raised it."""
    return callable(getattr(exc, "format_message", None)) and isinstance(getattr(exc, "exit_code", None), int)


def _class_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _given_value(argv: list[str], opts: list[str]) -> str | None:
    """The raw text given to option `opts` on the command line (last occurrence), if any."""
    value = None
    for i, arg in enumerate(argv):
        for opt in opts:
            if arg == opt and i + 1 < len(argv):
                value = argv[i + 1]
            elif arg.startswith(opt + "="):
                value = arg[len(opt) + 1:]
    return value


def _usage_line(exc: BaseException, argv: list[str]) -> str:
    """'<click's message> (<the value given>); <fix>' on one short line."""
    from fsar_bench.ui import clip, one_line

    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", "") or "fsar-bench"
    message = one_line(str(exc.format_message()).strip().rstrip("."))  # type: ignore[attr-defined]
    if message[:1].isupper() and message[1:2].islower():
        message = message[0].lower() + message[1:]
    message = re.sub(r": ([A-Z])(?=[a-z])", lambda m: ": " + m.group(1).lower(), message, count=1)
    fix = f"see `{path} --help`"
    opts = list(getattr(getattr(exc, "param", None), "opts", None) or [])
    given = _given_value(argv, [o for o in opts if o.startswith("-")]) if opts else None
    if given is not None:
        message = message.replace(":", f" ({clip(given)}):", 1) if ":" in message else f"{message} ({clip(given)})"
        try:
            number = float(given)
        except ValueError:
            number = None
        if "integer" in message and number is not None and number.is_integer() and abs(number) < 1e15:
            fix = f"write it as a whole number, {opts[0]} {int(number)}"
    return f"{message}; {fix}"


def _error(line: str, code: int) -> None:
    print(f"error: {line}", file=sys.stderr)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point; `argv` (without the program name) is for tests."""
    from typer.main import get_command

    from fsar_bench.cli.app import app
    from fsar_bench.errors import FsarError
    from fsar_bench.ui import help_width, one_line

    try:
        command = get_command(app)
        command.context_settings = {**(command.context_settings or {}), **help_width()}  # read per call
        _guard_interrupts(command)
        result = command.main(args=argv, standalone_mode=False, prog_name="fsar-bench")
        if isinstance(result, int) and not isinstance(result, bool) and result:
            sys.exit(result)
    except FsarError as exc:
        _error(one_line(exc.problem) + (f"; {one_line(exc.fix)}" if exc.fix else ""), exc.exit_code)
    except SystemExit:
        raise
    except (KeyboardInterrupt, Interrupted):
        print(INTERRUPTED, file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        names = _class_names(exc)
        if "NoArgsIsHelpError" in names:  # `fsar-bench` or `fsar-bench list` alone: the help text
            print(exc.format_message())  # type: ignore[attr-defined]
            sys.exit(2)
        if "Abort" in names:  # click 8.1: Ctrl-C while parsing
            print(INTERRUPTED, file=sys.stderr)
            sys.exit(130)
        if _is_usage_error(exc):  # every usage error exits 2, whatever click's own code for it
            _error(_usage_line(exc, list(sys.argv[1:] if argv is None else argv)), 2)
        raise
