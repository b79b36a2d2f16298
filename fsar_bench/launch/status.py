"""`fsar-bench status GROUP`: each point of a launched group, from the files the jobs leave.

Sources, most direct first: the run folder (`summary.json` = done; found through the point file or
through the `run.json` the runner writes into every run folder it starts), the point file the job
and the launcher keep (running on which host and pid, attempts, the last error line), the
submitit job state on SLURM, and the MLflow child runs of the group's parent run (the status of
each point's newest child run).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fsar_bench.errors import FsarError
from fsar_bench.launch.state import GroupFolder, alive, groups_dir


@dataclass
class PointStatus:
    name: str
    state: str  # pending | running | done | failed
    attempts: int
    job: str
    accuracy: float | None
    detail: str  # the run folder when done or running, the last error line when failed
    mlflow: str  # status of the point's latest MLflow child run ('' when none is known)


def find_group(results_dir: Path, name: str) -> GroupFolder:
    """The group folder named `name`, or the newest one whose name starts with it."""
    root = groups_dir(results_dir)
    exact = GroupFolder(root / name)
    if exact.exists():
        return exact
    matches = sorted((g for g in root.glob(f"{name}*") if (g / "group.json").exists()),
                     key=lambda g: GroupFolder(g).info().get("created", 0))
    if not matches:
        known = list_groups(results_dir)
        hint = f"known groups: {', '.join(g.name for g in known[-5:])}" if known else \
            "no group was launched with this results_dir (pass --results-dir)"
        raise FsarError(f"no launched group {name!r} under {root}", hint)
    return GroupFolder(matches[-1])


def list_groups(results_dir: Path) -> list[GroupFolder]:
    """Every launched group of `results_dir`, oldest first."""
    root = groups_dir(results_dir)
    found = [GroupFolder(g) for g in root.glob("*") if (g / "group.json").exists()]
    return sorted(found, key=lambda g: g.info().get("created", 0))


def _spec_key(spec: Any) -> str:
    return json.dumps(spec, sort_keys=True, default=str)


def _run_folders(results_dir: Path) -> dict[str, list[Path]]:
    """Run folders by the spec in their run.json (several when the world size changed the key)."""
    out: dict[str, list[Path]] = {}
    for path in results_dir.glob("*/run.json"):
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))["spec"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        out.setdefault(_spec_key(spec), []).append(path.parent)
    return out


def _child_runs(info: dict[str, Any], points: list[dict[str, Any]]) -> dict[str, Any]:
    """The MLflow child runs of the group's parent run by run key (newest wins) and by run id; {} if
    the store cannot be read."""
    parent = info.get("parent_run_id")
    ids = [p["mlflow_run_id"] for p in points if p.get("mlflow_run_id")]
    if not info.get("tracking_uri") or not (parent or ids):
        return {}
    try:
        from fsar_bench.tracking import _client

        client = _client(info["tracking_uri"])
        exp = client.get_experiment_by_name(info.get("experiment", "fsar-bench"))
        if exp is None:
            return {}
        if parent:
            runs = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'",
                                      order_by=["attributes.start_time ASC"], max_results=5000)
        else:  # a group without a parent run (`run --launcher submitit`): the runs its jobs recorded
            runs = [client.get_run(i) for i in ids]
    except Exception:  # noqa: BLE001  (status must work without the tracking store)
        return {}
    found = {r.data.tags.get("fsar.run_key", ""): r for r in runs}  # the newest run of each key
    found.update({r.info.run_id: r for r in runs})
    return found


def _slurm_state(point: dict[str, Any], cluster: str) -> str:
    if cluster != "slurm" or not point.get("job_ids") or not point.get("job_folder"):
        return ""
    try:
        import submitit

        return str(submitit.SlurmJob(point["job_folder"], str(point["job_ids"][-1])).state)
    except Exception:  # noqa: BLE001  (sacct missing or not answering)
        return ""


def point_status(point: dict[str, Any], folders: dict[str, list[Path]], children: dict[str, Any],
                 cluster: str) -> PointStatus:
    """One point's state from its run folder, point file, SLURM and MLflow (module docstring)."""
    candidates = [Path(point["run_dir"])] if point.get("run_dir") else []
    candidates += folders.get(_spec_key(point.get("spec")), [])
    run_dir = next((d for d in candidates if (d / "summary.json").exists()), candidates[0] if candidates else None)
    summary = _summary(run_dir)
    child = children.get(run_dir.name.rsplit("-", 1)[-1]) if run_dir else None
    child = child or children.get(point.get("mlflow_run_id") or "")
    mlflow = child.info.status if child else ""
    state = point.get("state", "pending")
    jobs = point.get("job_ids") or []
    job = str(jobs[-1]) if jobs else ""
    attempts = int(point.get("attempts", 1))
    accuracy = summary.get("accuracy") if summary else point.get("accuracy")
    if state == "running":
        live = alive(point)
        slurm = _slurm_state(point, cluster)
        if live is False or slurm in ("FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "COMPLETED"):
            state = "failed" if not summary else "done"
            point = {**point, "error": point.get("error") or f"job {job} is gone ({slurm or 'process ended'}) "
                     "without recording an end"}
    if state not in ("running", "failed") and summary:
        state = "done"
    if state != "done" and not run_dir and mlflow == "FINISHED":
        state = "done"
    if state == "failed":
        detail = point.get("error") or point.get("last_error") or "failed (no error recorded)"
    elif state == "pending" and point.get("last_error"):
        detail = f"resubmitted after: {point['last_error']}"
    else:
        detail = str(run_dir) if run_dir else point.get("error", "")
    return PointStatus(point.get("name", "?"), state, attempts, job, accuracy, detail, mlflow)


def _summary(run_dir: Path | None) -> dict[str, Any] | None:
    if run_dir is None:
        return None
    try:
        return json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def group_status(group: GroupFolder) -> tuple[dict[str, Any], list[PointStatus]]:
    """(group.json, the state of each point) of a launched group."""
    info = group.info()
    results_dir = Path(info.get("results_dir", group.root.parent.parent))
    folders = _run_folders(results_dir)
    points = group.points()
    children = _child_runs(info, points)
    return info, [point_status(p, folders, children, info.get("cluster", "")) for p in points]
