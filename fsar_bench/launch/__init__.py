"""Run a group of points (sweep points, later seed replicates) as cluster jobs through submitit.

`--launcher local` (the default) runs every point in the calling process, as before;
`--launcher submitit` makes each point a job (SLURM, or local subprocesses with `cluster: local`)
configured by bench.yaml's `launcher:` section (launch/config.py). The caller creates the group's
MLflow parent run first; every job logs its child run to the same tracking URI and writes its
run folder under the same results_dir, so the results equal a local run of the same points.
`fsar-bench status GROUP` reads the group folder, the run folders and the tracking store.

Only this package imports submitit, and only when a group is launched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from fsar_bench.errors import FsarError, unknown
from fsar_bench.launch.config import LAUNCHERS, LauncherConfig

__all__ = ["LAUNCHERS", "LauncherConfig", "check_launcher", "launch_group", "launch_points", "launch_sweep_points"]


def check_launcher(name: str, config: Any) -> None:
    """`--launcher NAME` is known, and for submitit the paths jobs need are shared (before any work)."""
    if name not in LAUNCHERS:
        raise unknown("launcher", name, LAUNCHERS)
    if name == "submitit":
        from fsar_bench.launch.config import check_paths, resolve_cluster

        lc = LauncherConfig.from_mapping(config["launcher"], config.source)
        check_paths(lc, resolve_cluster(lc), config.tracking_uri, config.results_dir)


def launch_points(name: str, points: list[tuple[str, Any]], config: Any, parent_run_id: str | None,
                  log: Callable[[str], None] = print) -> list[Any]:
    """Run (name, RunSpec) points as submitit jobs of one group; their RunResults, in order."""
    from fsar_bench.launch.submitit_backend import Point, SubmititLauncher

    launcher = SubmititLauncher(name, config, parent_run_id, log=log)
    return launcher.run([Point(n, s) for n, s in points])


def launch_group(name: str, points: list[tuple[str, Any]], config: Any, params: dict[str, Any] | None = None,
                 tags: dict[str, str] | None = None, log: Callable[[str], None] = print) -> tuple[str, list[Any]]:
    """A group of points (e.g. seed replicates) under a new MLflow parent run, created before any job
    is submitted and ended FINISHED, FAILED or KILLED with the group; (parent run id, RunResults)."""
    from fsar_bench.tracking import Tracker

    tracker = Tracker(config.tracking_uri, config["experiment"], config.results_dir / "mlartifacts")
    parent = tracker.start(name, {"points": ",".join(n for n, _ in points), **(params or {})},
                           {"fsar.group": name, **(tags or {})})
    status = "FAILED"
    try:
        results = launch_points(name, points, config, parent, log=log)
        status = "FINISHED"
        return parent, results
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        tracker.end(status)


def launch_sweep_points(name: str, points: list[tuple[str, Any]], config: Any, parent_run_id: str | None,
                        reuse: bool, log: Callable[[str], None] = print) -> list[Any]:
    """A sweep's points as jobs. With `reuse` (N-way and shot sweeps) the first point trains in one
    job and the others re-score its final weights, exactly as the local sweep does: two waves."""
    from fsar_bench.launch.submitit_backend import Point, SubmititLauncher

    if not points:
        raise FsarError("the sweep has no points", "list its values in bench.yaml's sweeps section")
    launcher = SubmititLauncher(name, config, parent_run_id, log=log)
    if not reuse:
        return launcher.run([Point(n, s) for n, s in points])
    first = launcher.run([Point(*points[0])])
    weights = first[0].run_dir / "final.pt"
    rest = [(n, dataclasses.replace(s, no_train=True, init_from=str(weights)) if weights.exists() else s)
            for n, s in points[1:]]
    return first + launcher.run([Point(n, s) for n, s in rest])
