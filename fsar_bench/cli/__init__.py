"""The `fsar-bench` command: a thin typer layer over the library (no logic of its own).

Each command group lives in its own module and is mounted here. User errors (`FsarError`)
print one line and exit with code 2.
"""

from __future__ import annotations

import os
import sys




def main(argv: list[str] | None = None) -> None:
    """Entry point; `argv` (without the program name) is for tests."""
    from fsar_bench.cli.app import app
    from fsar_bench.errors import FsarError

    try:
        result = app(args=argv, standalone_mode=False, prog_name="fsar-bench")
        if isinstance(result, int) and result:
            sys.exit(result)
    except FsarError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # click usage errors come through here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(2)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        raise
