"""Cluster launching through submitit (#21), tested with submitit's local executor (real subprocesses).

A 2-point sweep and a 2-seed group run as jobs and equal the same points run in this process
(`--launcher local`); a job killed mid-run is resubmitted and resumes from its run folder; the
`launcher:` section, the shared-path rule, the retry logic and `fsar-bench status` are checked
without jobs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pandas as pd
import pytest

from fsar_bench.config import load_config
from fsar_bench.errors import FsarError

BENCH = """threads: 1
sweeps: {frames: {frames: [2, 4]}}
launcher: {cluster: local, gpus_per_job: 0, poll_s: 0.2, max_retries: 1}
"""


@pytest.fixture()
def bench(workdir):
    (workdir / "bench.yaml").write_text(BENCH)
    return workdir


def _episodes(run_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(run_dir / "episodes.parquet")


def _children(parent: str) -> list:
    cfg = load_config()
    client = mlflow.MlflowClient(cfg.tracking_uri)
    exp = client.get_experiment_by_name(cfg["experiment"])
    return client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")


def _group(workdir: Path):
    from fsar_bench.launch.state import GroupFolder

    (root,) = (workdir / "fsar-runs" / "groups").iterdir()
    return GroupFolder(root)


# -- jobs of the local executor --------------------------------------------------------------

def test_sweep_points_run_as_jobs_and_equal_a_local_sweep(bench, cli):
    args = ("sweep", "frames", "--method", "protonet", "--dataset", "toy-motion", "--episodes", "100", "--steps", "6")
    res = cli(*args, "--launcher", "submitit")
    assert res.code == 0, res.err
    group = _group(bench)
    info = group.info()
    assert info["cluster"] == "local" and info["parent_run_id"]
    points = group.points()
    assert [p["name"] for p in points] == ["2", "4"]
    assert all(p["state"] == "done" and p["attempts"] == 1 for p in points)
    assert all(Path(p["job_folder"]).is_dir() and p["pid"] != os.getpid() for p in points)  # real subprocesses
    children = _children(info["parent_run_id"])  # the jobs logged child runs of the parent made before submission
    assert sorted(c.data.params["frames"] for c in children) == ["2", "4"]
    assert all(c.info.status == "FINISHED" for c in children)

    status = cli("status", group.name[:12])
    assert status.code == 0, status.err
    assert "2 done, 0 running, 0 pending, 0 failed" in status.out

    local = cli(*args, "--results-dir", "local-runs")  # --launcher local: this process runs the points
    assert local.code == 0, local.err
    for p in points:
        job_dir = Path(p["run_dir"])
        local_dir = bench / "local-runs" / job_dir.name  # same spec, same run key
        pd.testing.assert_frame_equal(_episodes(job_dir), _episodes(local_dir))
        mine, theirs = (json.loads((d / "summary.json").read_text()) for d in (job_dir, local_dir))
        assert (mine["accuracy"], mine["ci95"], mine["episodes"]) == (theirs["accuracy"], theirs["ci95"],
                                                                      theirs["episodes"])


def test_seed_group_with_a_job_killed_mid_run_is_resubmitted_and_resumes(bench):
    import dataclasses

    from fsar_bench.engine.runner import RunSpec, execute
    from fsar_bench.launch import launch_group

    cfg = load_config()
    specs = [RunSpec("protonet", "toy-motion", episodes=100, train={"steps": 16, "seed": s, "checkpoint_every": 2})
             for s in (0, 1)]
    ref_cfg = dataclasses.replace(cfg, data={**cfg.data, "results_dir": str(bench / "local-runs")})
    local = [execute(s, ref_cfg, log=lambda _: None) for s in specs]  # the same points, uninterrupted

    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(
        result=_catch(launch_group, "seeds-protonet-toy-motion", [("seed-0", specs[0]), ("seed-1", specs[1])],
                      cfg, {"seeds": "0,1"}, log=lambda _: None)))
    thread.start()
    victim = bench / "fsar-runs" / local[1].run_dir.name
    key = local[1].run_dir.name.rsplit("-", 1)[-1]  # the run key (same spec, same key)
    client = mlflow.MlflowClient(cfg.tracking_uri)
    killed = None
    deadline = time.time() + 300
    while killed is None and time.time() < deadline and thread.is_alive():
        groups = bench / "fsar-runs" / "groups"
        point = _group(bench).read_point(1) if groups.is_dir() and any(groups.iterdir()) else {}
        running = point.get("state") == "running" and (victim / "run.json").exists()
        if running and not (victim / "summary.json").exists():
            # mid-run: training (checkpoint.pt) or later, once the job's MLflow run is open
            started = (victim / "checkpoint.pt").exists() or client.search_runs(
                [client.get_experiment_by_name(cfg["experiment"]).experiment_id],
                f"tags.`fsar.run_key` = '{key}' and attributes.status = 'RUNNING'")
            if started:
                os.kill(int(point["pid"]), signal.SIGKILL)  # the job's process dies mid-run
                killed = int(point["pid"])
        time.sleep(0.05)
    thread.join(timeout=600)
    assert killed, "the job was not caught mid-training"
    parent, results = out["result"]

    point = _group(bench).read_point(1)
    assert point["attempts"] == 2 and point["state"] == "done" and point["pid"] != killed
    assert "ended without a result" in point["last_error"]
    assert _group(bench).read_point(0)["attempts"] == 1
    runs = {c.info.run_id: c for c in _children(parent)}
    resumed = runs[results[1].mlflow_run_id]
    assert resumed.info.status == "FINISHED" and resumed.data.tags["fsar.resumed"] == "true"
    assert sum(c.info.status == "KILLED" for c in runs.values()) == 1  # the killed attempt's run
    for job, ref in zip(results, local):
        pd.testing.assert_frame_equal(job.results, ref.results)
        assert job.summary["accuracy"] == ref.summary["accuracy"] and job.summary["ci95"] == ref.summary["ci95"]
        assert job.summary["train_steps"] == ref.summary["train_steps"] == 16


def _catch(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001  (surfaced by the test's own asserts)
        return exc


# -- without jobs ----------------------------------------------------------------------------

def test_launcher_section_is_validated_like_the_rest_of_bench_yaml(tmp_path):
    path = tmp_path / "bench.yaml"
    for text, expected in [("launcher: {partiton: gpu}", "unknown launcher key 'partiton'"),
                           ("launcher: {gpus_per_job: -1}", "launcher.gpus_per_job"),
                           ("launcher: {cluster: pbs}", "not one of auto, slurm, local"),
                           ("launcher: {sbatch: [a]}", "launcher.sbatch"),
                           ("launcher: 3", "not a mapping")]:
        path.write_text(text)
        with pytest.raises(FsarError) as err:
            load_config(path)
        assert expected in str(err.value) and "\n" not in str(err.value)
    assert "did you mean 'partition'" in str(_error(path, "launcher: {partiton: gpu}"))
    path.write_text("launcher: {partition: gpu, gpus_per_job: 4, time_min: 600, sbatch: {qos: high}, "
                    "shared_paths: [/shared]}")
    from fsar_bench.launch.config import LauncherConfig

    lc = LauncherConfig.from_mapping(load_config(path)["launcher"])
    assert (lc.partition, lc.gpus_per_job, lc.time_min, lc.sbatch, lc.max_retries) == ("gpu", 4, 600,
                                                                                       {"qos": "high"}, 2)


def _error(path: Path, text: str) -> FsarError:
    path.write_text(text)
    try:
        load_config(path)
    except FsarError as exc:
        return exc
    raise AssertionError("no error")


def test_cluster_jobs_need_a_shared_tracking_store_and_results_dir(tmp_path):
    from fsar_bench.launch.config import LauncherConfig, check_paths

    shared = tmp_path / "shared"
    db = f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    lc = LauncherConfig(shared_paths=[str(shared)])
    with pytest.raises(FsarError, match="mlflow server"):
        check_paths(lc, "slurm", db, shared / "runs")
    with pytest.raises(FsarError, match="results_dir .* not under a folder declared shared"):
        check_paths(lc, "slurm", "http://tracker:5000", tmp_path / "home" / "runs")
    check_paths(lc, "slurm", f"sqlite:///{shared / 'mlflow.db'}", shared / "runs")
    check_paths(lc, "slurm", "http://tracker:5000", shared / "runs")
    check_paths(LauncherConfig(), "local", db, tmp_path / "anywhere")  # local jobs share this machine's paths


def test_launcher_option_errors_are_one_line_before_any_work(workdir, cli):
    res = cli("sweep", "frames", "--launcher", "slurmm")
    assert res.code == 2 and "unknown launcher 'slurmm'" in res.err and res.err.count("\n") == 1
    (workdir / "bench.yaml").write_text("launcher: {cluster: slurm}\n")
    res = cli("sweep", "frames", "--launcher", "submitit")
    assert res.code == 2 and "launcher.shared_paths" in res.err and res.err.count("\n") == 1
    assert not (workdir / "fsar-runs" / "groups").exists()


def test_jobs_receive_absolute_paths_and_the_resolved_tracking_uri(workdir, tracking_uri):
    from fsar_bench.launch.jobs import _config
    from fsar_bench.launch.submitit_backend import frozen_config

    frozen = frozen_config(load_config())
    assert Path(frozen["data"]["results_dir"]).is_absolute()
    assert frozen["data"]["tracking_uri"] == tracking_uri  # from $MLFLOW_TRACKING_URI in this process
    os.environ.pop("MLFLOW_TRACKING_URI")  # a job's environment may not carry it
    try:
        assert _config(frozen).tracking_uri == tracking_uri
    finally:
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri


class _CrashedJob:
    """A submitit job stand-in that ended without a result (killed), or with a user error."""

    def __init__(self, folder: Path, job_id: str) -> None:
        from submitit.core.utils import JobPaths

        self.job_id = job_id
        self.paths = JobPaths(folder / job_id, job_id)

    def done(self) -> bool:
        return True


class _FakeExecutor:
    def __init__(self, folder: Path, user_error_for: set[int]) -> None:
        self.folder, self.user_error_for, self.submitted = folder, user_error_for, []

    def submit(self, fn, payload, config):
        from fsar_bench.launch.state import GroupFolder

        self.submitted.append(payload["name"])
        if payload["index"] in self.user_error_for:
            GroupFolder(Path(payload["group"])).update_point(payload["index"], state="failed", error_kind="user",
                                                             error="unknown dataset 'x'")
        return _CrashedJob(self.folder, str(len(self.submitted)))

    def batch(self):
        import contextlib

        return contextlib.nullcontext()


def test_failed_jobs_are_resubmitted_up_to_max_retries_but_user_errors_are_not(workdir):
    from fsar_bench.engine.runner import RunSpec
    from fsar_bench.launch.config import LauncherConfig
    from fsar_bench.launch.submitit_backend import Point, SubmititLauncher

    ex = _FakeExecutor(workdir / "jobs", user_error_for={1})
    lc = LauncherConfig(cluster="local", max_retries=2, poll_s=0.01)
    launcher = SubmititLauncher("g", load_config(), "parent", lc, log=lambda _: None, executor_factory=lambda: ex)
    spec = RunSpec("protonet", "toy-motion")
    with pytest.raises(FsarError) as err:
        launcher.run([Point("crashes", spec), Point("bad-input", spec)])
    assert ex.submitted == ["crashes", "bad-input", "crashes", "crashes"]  # 1 + max_retries attempts; no retry
    assert "2 of 2 points" in str(err.value) and "fsar-bench status" in str(err.value)
    crashed, bad = launcher.group.points()
    assert (crashed["state"], crashed["attempts"], bad["state"], bad["attempts"]) == ("failed", 3, "failed", 1)
    assert "ended without a result" in crashed["error"] and bad["error"] == "unknown dataset 'x'"


def test_preempted_job_requeues_itself_and_is_shown_pending(tmp_path):
    from fsar_bench.launch.jobs import PointJob
    from fsar_bench.launch.state import GroupFolder

    group = GroupFolder(tmp_path / "g")
    group.update_point(0, name="seed-0", state="running", attempts=1)
    job, point, config = PointJob(), {"index": 0, "group": str(group.root), "name": "seed-0"}, {"data": {}}
    delayed = job.checkpoint(point, config)
    assert delayed.function is job and delayed.args == (point, config)  # the same call, resumed by its run folder
    assert group.read_point(0)["state"] == "pending"


def test_status_shows_failed_points_with_their_last_error_and_dead_jobs(workdir, cli):
    from fsar_bench.launch.state import GroupFolder

    group = GroupFolder(workdir / "fsar-runs" / "groups" / "sweep-x-20260101-000000-abc")
    group.write_info({"group": group.name, "cluster": "local", "created": 1.0,
                      "results_dir": str(workdir / "fsar-runs")})
    group.update_point(0, name="5", state="failed", attempts=3, job_ids=["11", "12", "13"],
                       error="RuntimeError: CUDA out of memory")
    group.update_point(1, name="6", state="running", attempts=1, job_ids=["14"], host=socket.gethostname(),
                       pid=2 ** 22 + 12345)  # a process that does not exist
    group.update_point(2, name="7", state="pending", attempts=1, job_ids=["15"])
    res = cli("status", "sweep-x")
    assert res.code == 0, res.err
    assert "CUDA out of memory" in res.out and "is gone" in res.out
    assert "0 done, 0 running, 1 pending, 2 failed" in res.out
    listing = cli("status")
    assert group.name in listing.out
    missing = cli("status", "nope")
    assert missing.code == 2 and "no launched group 'nope'" in missing.err


class _FinishedJob(_CrashedJob):
    """A job stand-in that finished: its result file exists and `result()` returns its output."""

    def __init__(self, folder: Path, job_id: str, output: dict) -> None:
        super().__init__(folder, job_id)
        self.output = output
        self.paths.result_pickle.parent.mkdir(parents=True, exist_ok=True)
        self.paths.result_pickle.write_bytes(b"")

    def result(self) -> dict:
        return self.output


def test_reused_weights_sweeps_submit_the_training_point_first_then_rescore_its_weights(workdir, monkeypatch):
    from fsar_bench.engine.runner import RunSpec
    from fsar_bench.launch import launch_sweep_points, submitit_backend

    (workdir / "bench.yaml").write_text(BENCH)
    submitted: list[dict] = []

    class Executor(_FakeExecutor):
        def submit(self, fn, payload, config):
            submitted.append(payload)
            run_dir = workdir / "fsar-runs" / f"run-{payload['index']}"
            run_dir.mkdir(parents=True)
            (run_dir / "final.pt").write_bytes(b"weights")
            return _FinishedJob(self.folder, str(len(submitted)), {"run_dir": str(run_dir), "summary": {}})

    monkeypatch.setattr(submitit_backend.SubmititLauncher, "_executor", lambda self: Executor(workdir / "jobs", set()))
    monkeypatch.setattr(submitit_backend, "_run_result", lambda out: SimpleNamespace(run_dir=Path(out["run_dir"])))
    points = [(str(w), RunSpec("protonet", "toy-motion", way=w)) for w in (5, 6, 7)]
    runs = launch_sweep_points("sweep-nway", points, load_config(), "parent", reuse=True, log=lambda _: None)
    assert [r.run_dir.name for r in runs] == ["run-0", "run-1", "run-2"]
    first, *rest = (p["spec"] for p in submitted)
    assert not first["no_train"] and first["init_from"] is None  # the first point trains
    assert all(s["no_train"] and s["init_from"] == str(workdir / "fsar-runs" / "run-0" / "final.pt") for s in rest)
    assert [s["way"] for s in rest] == [6, 7]
