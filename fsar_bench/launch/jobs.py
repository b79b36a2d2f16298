"""What a cluster job runs: one point (a RunSpec and its bench.yaml), through the ordinary runner.

Jobs receive plain dicts (picklable, and readable in submitit's job folder) and call
`fsar_bench.engine.runner.execute`, so a point run by a job writes the same run folder and MLflow
child run as `--launcher local`. A job with several GPUs runs the point under torchrun (one process
per GPU, the `--nproc` path of docs/distributed.md). A pre-empted or timed-out job is requeued by
submitit (`Checkpointable`) and resumes from its run folder, like any re-run.

`python -m fsar_bench.launch.jobs POINT.json RESULT.json` is the torchrun entry point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import submitit

from fsar_bench.launch.state import GroupFolder, here, last_line


def _config(config: dict[str, Any]):
    from fsar_bench.config import BenchConfig

    return BenchConfig(data=config["data"], source=config.get("source", "launcher"),
                       file_tracking_uri=config.get("file_tracking_uri"))


def _spec(spec: dict[str, Any]):
    from fsar_bench.engine.runner import RunSpec

    return RunSpec(**spec)


def _execute(point: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Run the point in this process (under torchrun: as one of its ranks); its run folder and summary."""
    from fsar_bench.engine import distributed
    from fsar_bench.engine.runner import execute

    try:
        result = execute(_spec(point["spec"]), _config(config), progress=None,
                         log=lambda s: print(s, flush=True), parent_run_id=point.get("parent_run_id"))
    finally:
        distributed.shutdown()
    return {"run_dir": str(result.run_dir), "summary": result.summary}


def _under_torchrun(point: dict[str, Any], config: dict[str, Any], nproc: int) -> dict[str, Any]:
    """Run the point as `torchrun --standalone --nproc_per_node N` (one process per GPU of the job)."""
    from fsar_bench.errors import FsarError

    folder = Path(point["group"]) / "points"
    spec_file, out = folder / f"{point['index']:04d}.torchrun.json", folder / f"{point['index']:04d}.result.json"
    from fsar_bench.io import atomic_write

    atomic_write(spec_file, json.dumps({"point": point, "config": config}, default=str))
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "fsar_bench.launch.jobs", str(spec_file), str(out)]
    print("launching: " + " ".join(cmd[1:]), flush=True)
    code = subprocess.run(cmd, check=False).returncode
    result = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    if "error" in result:  # a user error on rank 0 (bad input, locked run folder): not retried
        raise FsarError(result["error"])
    if code != 0 or "summary" not in result:
        raise RuntimeError(f"torchrun exited with code {code} for point {point['name']} (see the job's log)")
    return result


def run_point(point: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """One point, in a job: record 'running', run it, record 'done' (run folder, accuracy) or 'failed'
    (the error's last line; `user` errors are not retried). Returns {run_dir, summary}."""
    from fsar_bench.errors import FsarError

    group = GroupFolder(Path(point["group"]))
    try:
        job_id = submitit.JobEnvironment().job_id
    except RuntimeError:  # called outside a job (tests, debugging)
        job_id = ""
    group.update_point(point["index"], state="running", job_id=job_id, error="", **here())
    nproc = int(point.get("nproc", 1))
    try:
        out = _under_torchrun(point, config, nproc) if nproc > 1 else _execute(point, config)
    except SystemExit:  # submitit's requeue after pre-emption or a time-out: checkpoint() recorded it
        raise
    except FsarError as exc:
        group.update_point(point["index"], state="failed", error_kind="user",
                           error=str(exc).replace("\n", " ")[:500])
        raise
    except BaseException as exc:
        kind = "interrupted" if isinstance(exc, KeyboardInterrupt) else "crash"
        group.update_point(point["index"], state="failed", error_kind=kind,
                           error=last_line(traceback.format_exc()) or type(exc).__name__)
        raise
    s = out["summary"]
    group.update_point(point["index"], state="done", run_dir=out["run_dir"], mlflow_run_id=s.get("mlflow_run_id"),
                       accuracy=s.get("accuracy"), ci95=s.get("ci95"), error="")
    return out


class PointJob(submitit.helpers.Checkpointable):
    """The callable submitted per point. On pre-emption or time-out submitit calls `checkpoint`,
    which requeues the same call: the run folder (checkpoints, result chunks) makes it resume."""

    def __call__(self, point: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        return run_point(point, config)

    def checkpoint(self, point: dict[str, Any], config: dict[str, Any]) -> submitit.helpers.DelayedSubmission:
        try:
            GroupFolder(Path(point["group"])).update_point(point["index"], state="pending",
                                                           error="pre-empted or timed out: requeued")
        except OSError:
            pass  # requeuing matters more than the status line
        return submitit.helpers.DelayedSubmission(self, point, config)


def point_payload(index: int, name: str, spec: Any, group: Path, parent_run_id: str | None,
                  nproc: int) -> dict[str, Any]:
    """The plain dict a job receives for one point."""
    return {"index": index, "name": name, "spec": asdict(spec), "group": str(group),
            "parent_run_id": parent_run_id, "nproc": nproc}


def _torchrun_main(argv: list[str]) -> int:
    """Entry point of each torchrun process of a multi-GPU job; rank 0 writes the result file."""
    from fsar_bench.engine import distributed
    from fsar_bench.io import atomic_write

    from fsar_bench.errors import FsarError

    payload = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    try:
        out, code = _execute(payload["point"], payload["config"]), 0
    except FsarError as exc:
        out, code = {"error": str(exc).replace("\n", " ")}, 2
    if distributed.launched_rank() == 0:
        atomic_write(Path(argv[1]), json.dumps(out, default=str))
    return code


if __name__ == "__main__":
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    sys.exit(_torchrun_main(sys.argv[1:]))
