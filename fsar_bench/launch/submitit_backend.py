"""The submitit backend: each point of a group becomes a job (a SLURM array job, or a local
subprocess with `cluster: local`), watched until every point is done.

submitit does the scheduling (sbatch, arrays, requeue on pre-emption and time-out); this module
adds what a benchmark group needs on top: the group folder `fsar-bench status` reads, and
resubmission of a job that failed or was killed (up to `launcher.max_retries` times; the new job
resumes from the run folder). A point whose run raised a user error (`FsarError`) is not retried:
it would fail the same way.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fsar_bench.config import BenchConfig
from fsar_bench.errors import FsarError
from fsar_bench.launch.config import LauncherConfig, check_paths, resolve_cluster
from fsar_bench.launch.state import GroupFolder, groups_dir, last_line

LOCAL_GRACE_S = 0.0  # a finished local job without a result pickle crashed (same disk, no lag)
CLUSTER_GRACE_S = 60.0  # on a cluster the result pickle can appear late on a network filesystem


@dataclass
class Point:
    """One unit of work of a group: a name shown by `status` and the RunSpec it runs."""

    name: str
    spec: Any  # fsar_bench.engine.runner.RunSpec


def frozen_config(config: BenchConfig) -> dict[str, Any]:
    """bench.yaml as the jobs must see it: the resolved tracking URI and absolute paths, so a job
    started elsewhere (another node, another working folder, no environment) runs the same point."""
    data = json.loads(json.dumps(config.data, default=str))
    data["tracking_uri"] = config.tracking_uri
    if data["tracking_uri"].startswith("sqlite:///"):
        db = Path(data["tracking_uri"][len("sqlite:///"):])
        data["tracking_uri"] = f"sqlite:///{db.expanduser().resolve().as_posix()}"
    data["results_dir"] = str(config.results_dir.resolve())
    data["data_root"] = str(config.data_root.resolve())
    return {"data": data, "source": config.source, "file_tracking_uri": None}


def _group_name(name: str, parent_run_id: str | None) -> str:
    import secrets

    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{name}-{stamp}-{(parent_run_id or secrets.token_hex(4))[:8]}"


class SubmititLauncher:
    """Runs lists of points as submitit jobs of one group (one group folder, one MLflow parent run)."""

    def __init__(self, name: str, config: BenchConfig, parent_run_id: str | None,
                 launcher: LauncherConfig | None = None, log: Callable[[str], None] = print,
                 executor_factory: Callable[..., Any] | None = None) -> None:
        self.config = config
        self.launcher = launcher or LauncherConfig.from_mapping(config["launcher"], config.source)
        self.cluster = resolve_cluster(self.launcher)
        check_paths(self.launcher, self.cluster, config.tracking_uri, config.results_dir)
        self.parent_run_id = parent_run_id
        self.log = log
        self.frozen = frozen_config(config)
        self.group = GroupFolder(groups_dir(config.results_dir.resolve()) / _group_name(name, parent_run_id))
        if self.launcher.folder:
            self.jobs_folder = Path(os.path.expanduser(self.launcher.folder)).resolve() / self.group.name
        else:
            self.jobs_folder = self.group.jobs
        self.executor = (executor_factory or self._executor)()
        self.count = 0
        self.group.write_info({"group": self.group.name, "name": name, "parent_run_id": parent_run_id,
                               "tracking_uri": self.frozen["data"]["tracking_uri"],
                               "experiment": config["experiment"], "cluster": self.cluster,
                               "results_dir": self.frozen["data"]["results_dir"], "jobs": str(self.jobs_folder),
                               "created": time.time(), "launcher": dataclasses.asdict(self.launcher)})
        log(f"group {self.group.name}: {self.cluster} jobs (follow with `fsar-bench status {self.group.name}`)")

    def _executor(self) -> Any:
        """A submitit AutoExecutor with the `launcher:` resources (slurm_* options only reach SLURM)."""
        import submitit

        lc = self.launcher
        ex = submitit.AutoExecutor(folder=self.jobs_folder / "%j", cluster=self.cluster,
                                   slurm_max_num_timeout=lc.max_retries, local_max_num_timeout=lc.max_retries)
        params: dict[str, Any] = {
            "name": f"fsar-{self.group.name}"[:120], "timeout_min": lc.time_min, "gpus_per_node": lc.gpus_per_job,
            "cpus_per_task": lc.cpus_per_job, "mem_gb": float(lc.mem_gb), "nodes": 1, "tasks_per_node": 1,
            "slurm_array_parallelism": lc.array_parallelism,
            "slurm_additional_parameters": {k.replace("-", "_"): v for k, v in lc.sbatch.items()},
        }
        if lc.partition:
            params["slurm_partition"] = lc.partition
        if lc.account:
            params["slurm_account"] = lc.account
        if lc.setup:
            params["slurm_setup"] = list(lc.setup)
        if self.cluster == "local":
            params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
        ex.update_parameters(**params)
        return ex

    # -- submission -------------------------------------------------------------------------

    def _payload(self, index: int, point: Point) -> dict[str, Any]:
        from fsar_bench.launch.jobs import point_payload

        nproc = max(1, self.launcher.gpus_per_job)  # several GPUs: torchrun, one process per GPU
        return point_payload(index, point.name, point.spec, self.group.root, self.parent_run_id, nproc)

    def _submit(self, payloads: list[dict[str, Any]]) -> list[Any]:
        from fsar_bench.launch.jobs import PointJob

        if len(payloads) == 1:
            jobs = [self.executor.submit(PointJob(), payloads[0], self.frozen)]
        else:
            with self.executor.batch():  # one SLURM array job, at most array_parallelism running at once
                jobs = [self.executor.submit(PointJob(), p, self.frozen) for p in payloads]
        try:
            (self.jobs_folder / "%j").rmdir()  # the empty staging folder submitit leaves behind
        except OSError:
            pass
        return jobs

    def run(self, points: list[Point]) -> list[Any]:
        """Submit `points`, wait for all of them (resubmitting failed ones) and return their
        RunResults in order; FsarError naming the failed points when some could not complete."""
        first = self.count
        self.count += len(points)
        payloads = [self._payload(first + i, p) for i, p in enumerate(points)]
        for p in payloads:
            self.group.update_point(p["index"], name=p["name"], spec=p["spec"], state="pending", attempts=1,
                                    error="", error_kind="")
        jobs = self._submit(payloads)
        for p, job in zip(payloads, jobs):
            self.group.record_jobs(p["index"], [job.job_id], str(job.paths.folder))
        self.log(f"group {self.group.name}: submitted {len(jobs)} job(s) "
                 f"({', '.join(sorted({str(j.job_id).split('_')[0] for j in jobs}))})")
        outputs = self._wait(payloads, jobs)
        return [_run_result(outputs[p["index"]]) for p in payloads]

    # -- watching -------------------------------------------------------------------------

    def _wait(self, payloads: list[dict[str, Any]], jobs: list[Any]) -> dict[int, dict[str, Any]]:
        by_index = {p["index"]: p for p in payloads}
        running = {p["index"]: job for p, job in zip(payloads, jobs)}
        ended_at: dict[int, float] = {}
        outputs: dict[int, dict[str, Any]] = {}
        failed: dict[int, str] = {}
        grace = LOCAL_GRACE_S if self.cluster == "local" else CLUSTER_GRACE_S
        shown = ""
        while running:
            for index, job in list(running.items()):
                if not job.done():
                    continue
                outcome = self._outcome(index, job, ended_at, grace)
                if outcome is None:
                    continue  # finished, result file not visible yet
                ended_at.pop(index, None)
                ok, value = outcome
                if ok:
                    outputs[index] = value
                    del running[index]
                    continue
                point = self.group.read_point(index)
                retry = point.get("error_kind") != "user" and point.get("attempts", 1) <= self.launcher.max_retries
                if retry:
                    running[index] = self._resubmit(by_index[index], point, value)
                else:
                    failed[index] = value
                    self.group.update_point(index, state="failed", error=value)
                    del running[index]
            line = f"{len(outputs)} done, {len(running)} running or pending, {len(failed)} failed"
            if line != shown:
                self.log(f"group {self.group.name}: {line}")
                shown = line
            if running:
                time.sleep(self.launcher.poll_s)
        if failed:
            index = min(failed)
            raise FsarError(f"{len(failed)} of {len(payloads)} points of group {self.group.name} failed "
                            f"(first: {by_index[index]['name']}: {failed[index]})",
                            f"see `fsar-bench status {self.group.name}`; fix the cause and re-run the same "
                            "command: finished points are reused, the others resume")
        return outputs

    def _outcome(self, index: int, job: Any, ended_at: dict[int, float], grace: float) -> tuple[bool, Any] | None:
        """(True, output) or (False, the error's last line) of a finished job; None while its result
        file may still be on its way."""
        if not job.paths.result_pickle.exists():
            first = ended_at.setdefault(index, time.time())
            if time.time() - first < grace:
                return None
            point = self.group.read_point(index)
            if point.get("state") == "failed" and point.get("error"):
                return False, point["error"]  # the job recorded its error but its result file is missing
            err = _tail(job.paths.stderr)
            return False, (f"job {job.job_id} ended without a result (killed, out of memory or node failure)"
                           + (f": {err}" if err else "") + f"; log {job.paths.stdout}")
        try:
            return True, job.result()
        except Exception as exc:  # noqa: BLE001  (submitit's FailedJobError carries the job's traceback)
            point = self.group.read_point(index)
            return False, point.get("error") or last_line(str(exc)) or type(exc).__name__

    def _resubmit(self, payload: dict[str, Any], point: dict[str, Any], error: str) -> Any:
        attempts = int(point.get("attempts", 1)) + 1
        self.log(f"group {self.group.name}: point {payload['name']} failed ({error}); resubmitting "
                 f"(attempt {attempts} of {self.launcher.max_retries + 1}, resumes from its run folder)")
        self.group.update_point(payload["index"], state="pending", attempts=attempts, last_error=error,
                                error="", error_kind="")
        job = self._submit([payload])[0]
        ids = list(point.get("job_ids") or []) + [job.job_id]
        self.group.record_jobs(payload["index"], ids, str(job.paths.folder))
        return job


def _tail(path: Path) -> str:
    try:
        return last_line(path.read_text(encoding="utf-8", errors="replace")[-4000:])
    except OSError:
        return ""


def _run_result(output: dict[str, Any]) -> Any:
    """A job's {run_dir, summary} as the RunResult `execute` returns (per-episode results re-read)."""
    import pandas as pd

    from fsar_bench.engine.runner import RunResult
    from fsar_bench.results.record import RunRecord

    run_dir = Path(output["run_dir"])
    summary = output["summary"]
    return RunResult(summary, pd.read_parquet(run_dir / "episodes.parquet"), run_dir, summary.get("mlflow_run_id"),
                     RunRecord.from_summary(summary))
