"""A launched group's folder: what was submitted and how each point is doing.

`<results_dir>/groups/<group>/` holds `group.json` (the group: its MLflow parent run, tracking URI,
cluster, point names), `points/<i>.json` (one point: its RunSpec, state, attempts, last error,
run folder; its job ids in `points/<i>.jobs.json`) and `jobs/` (submitit's scripts, pickles and logs). Both the submitting process
and the jobs write point files, always atomically, so `fsar-bench status` reads them at any time.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from fsar_bench.io import atomic_write

STATES = ("pending", "running", "done", "failed")  # what `fsar-bench status` shows


def groups_dir(results_dir: Path) -> Path:
    return results_dir / "groups"


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


class GroupFolder:
    """The files of one launched group (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    def exists(self) -> bool:
        return (self.root / "group.json").exists()

    def info(self) -> dict[str, Any]:
        return _read(self.root / "group.json")

    def write_info(self, info: dict[str, Any]) -> None:
        atomic_write(self.root / "group.json", json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")

    def point_path(self, index: int) -> Path:
        return self.root / "points" / f"{index:04d}.json"

    def read_point(self, index: int) -> dict[str, Any]:
        """The point's file with its job ids merged in (kept apart: the launcher writes them while
        the job may already be writing the point file)."""
        return {**_read(self.point_path(index)), **_read(self._jobs_path(index))}

    def _jobs_path(self, index: int) -> Path:
        return self.root / "points" / f"{index:04d}.jobs.json"

    def record_jobs(self, index: int, job_ids: list[str], job_folder: str) -> None:
        atomic_write(self._jobs_path(index), json.dumps({"job_ids": job_ids, "job_folder": job_folder}) + "\n")

    def update_point(self, index: int, **fields: Any) -> dict[str, Any]:
        """Merge `fields` into the point's file (atomic replace), stamping time, host and pid."""
        data = {**_read(self.point_path(index)), **fields, "updated": time.time()}
        atomic_write(self.point_path(index), json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        return data

    def points(self) -> list[dict[str, Any]]:
        paths = sorted((self.root / "points").glob("[0-9][0-9][0-9][0-9].json"))
        return [self.read_point(int(p.stem)) for p in paths]


def here() -> dict[str, Any]:
    """Where the calling process runs (recorded by a running job; `status` checks it is alive)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def alive(point: dict[str, Any]) -> bool | None:
    """Whether the process recorded in the point file still runs: None when it ran on another host."""
    if point.get("host") != socket.gethostname() or not point.get("pid"):
        return None
    try:
        os.kill(int(point["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def last_line(text: str) -> str:
    """The last non-empty line of an error text (a traceback's 'Type: message' line)."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:500] if lines else ""
