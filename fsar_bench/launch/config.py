"""The `launcher:` section of bench.yaml: where and how cluster jobs run (docs/cluster.md).

Validated like the rest of bench.yaml (unknown keys get suggestions, wrong values a one-line error
naming the key and an example), and checked against the run's paths before anything is submitted:
jobs on other nodes must reach the tracking store and the results folder at the same paths.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fsar_bench.errors import FsarError, unknown
from fsar_bench.ui import clip

LAUNCHERS = ("local", "submitit")  # `--launcher`: local = the calling process runs every point
CLUSTERS = ("auto", "slurm", "local")  # submitit executors; auto = SLURM when sbatch is found, else local

DEFAULTS: dict[str, Any] = {
    "cluster": "auto",
    "partition": None,  # sbatch --partition
    "account": None,  # sbatch --account
    "gpus_per_job": 1,  # > 1: the point runs under torchrun, one process per GPU
    "cpus_per_job": 8,
    "mem_gb": 32,
    "time_min": 240,  # time limit of one job; a timed-out job is requeued and resumes
    "array_parallelism": 64,  # at most this many jobs of one submission run at once
    "max_retries": 2,  # resubmissions of a failed, killed or pre-empted job (it resumes from its run folder)
    "sbatch": {},  # extra sbatch options: {constraint: a100, qos: high}
    "setup": [],  # shell lines run before each job: module load ..., source .venv/bin/activate
    "shared_paths": [],  # folders every node sees at the same path (results_dir, an sqlite store)
    "folder": None,  # submitit's job files (scripts, logs); default <results_dir>/groups/<group>/jobs
    "poll_s": 30,  # seconds between two looks at the jobs' states
}

_INT = lambda lo: (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= lo)  # noqa: E731
_OPT_STR = lambda v: v is None or (isinstance(v, str) and bool(v.strip()))  # noqa: E731
_STR_LIST = lambda v: isinstance(v, list) and all(isinstance(s, str) and s.strip() for s in v)  # noqa: E731
CHECKS: dict[str, tuple[str, str, Any]] = {
    "cluster": ("one of " + ", ".join(CLUSTERS), "slurm", lambda v: v in CLUSTERS),
    "partition": ("a partition name or null", "gpu", _OPT_STR),
    "account": ("an account name or null", "my-lab", _OPT_STR),
    "gpus_per_job": ("an integer >= 0", "1", _INT(0)),
    "cpus_per_job": ("an integer >= 1", "8", _INT(1)),
    "mem_gb": ("a number > 0", "32", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
               and math.isfinite(v) and v > 0),
    "time_min": ("an integer >= 1 (minutes)", "240", _INT(1)),
    "array_parallelism": ("an integer >= 1", "64", _INT(1)),
    "max_retries": ("an integer >= 0", "2", _INT(0)),
    "sbatch": ("a mapping of sbatch options to values", "{constraint: a100}",
               lambda v: isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, (str, int, float))
                                                     and not isinstance(x, bool) for k, x in v.items())),
    "setup": ("a list of shell lines", "['source ~/venv/bin/activate']", _STR_LIST),
    "shared_paths": ("a list of folder paths", "[/shared]", _STR_LIST),
    "folder": ("a folder path or null", "/shared/fsar-jobs", _OPT_STR),
    "poll_s": ("a number > 0 (seconds)", "30", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
               and math.isfinite(v) and v > 0),
}


@dataclass
class LauncherConfig:
    """The validated `launcher:` section (defaults filled in)."""

    cluster: str = "auto"
    partition: str | None = None
    account: str | None = None
    gpus_per_job: int = 1
    cpus_per_job: int = 8
    mem_gb: float = 32
    time_min: int = 240
    array_parallelism: int = 64
    max_retries: int = 2
    sbatch: dict[str, Any] = field(default_factory=dict)
    setup: list[str] = field(default_factory=list)
    shared_paths: list[str] = field(default_factory=list)
    folder: str | None = None
    poll_s: float = 30

    @classmethod
    def from_mapping(cls, data: dict[str, Any] | None, where: str = "bench.yaml") -> LauncherConfig:
        data = data or {}
        validate(data, where)
        return cls(**{**DEFAULTS, **{k: v for k, v in data.items() if v is not None or DEFAULTS[k] is None}})


def validate(data: Any, where: str) -> None:
    """Check the `launcher:` mapping of `where`; one-line FsarError naming the key and the fix."""
    if data is None:
        return
    if not isinstance(data, dict):
        raise FsarError(f"launcher in {where} is {type(data).__name__} {clip(data)}, not a mapping",
                        "write it as `launcher: {partition: gpu, gpus_per_job: 1}` (docs/cluster.md)")
    for key, value in data.items():
        if key not in CHECKS:
            raise unknown("launcher key", str(key), CHECKS, where=f"in {where}")
        if value is None and DEFAULTS[key] is not None:
            continue  # null: the default
        what, example, ok = CHECKS[key]
        if not ok(value):
            raise FsarError(f"launcher.{key} in {where} is {clip(value)}, not {what}",
                            f"write e.g. `{key}: {example}`")


def resolve_cluster(launcher: LauncherConfig) -> str:
    """`slurm` or `local`: `auto` is SLURM when submitit finds it (sbatch on the PATH), else local."""
    if launcher.cluster != "auto":
        return launcher.cluster
    import submitit

    return "slurm" if submitit.AutoExecutor.which() == "slurm" else "local"


def _under(path: Path, folders: list[str]) -> bool:
    resolved = path.expanduser().resolve()
    for folder in folders:
        root = Path(os.path.expanduser(folder)).resolve()
        if resolved == root or root in resolved.parents:
            return True
    return False


def sqlite_path(uri: str) -> Path | None:
    """The database file of an `sqlite:///PATH` tracking URI (None for servers and other databases)."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def check_paths(launcher: LauncherConfig, cluster: str, tracking_uri: str, results_dir: Path) -> None:
    """On a cluster, jobs on other nodes write the run folders and log to the tracking store: both
    must be on folders every node sees (`shared_paths`), and a local sqlite store only qualifies on
    one. Jobs of the local executor run on this machine, where every path is shared."""
    if cluster == "local":
        return
    db = sqlite_path(tracking_uri)
    declared = launcher.shared_paths
    if db is not None and not _under(db, declared):
        raise FsarError(f"the MLflow store {tracking_uri} is an sqlite file that cluster jobs on other nodes "
                        "cannot be assumed to reach",
                        "run `mlflow server --backend-store-uri sqlite:///SHARED/mlflow.db --host 0.0.0.0` and "
                        "pass --tracking-uri http://HOST:5000, or declare the folder holding the .db in "
                        "launcher.shared_paths (docs/cluster.md)")
    if not _under(results_dir, declared):
        raise FsarError(f"results_dir {results_dir} is not under a folder declared shared, but cluster jobs "
                        "write their run folders there",
                        "put results_dir on a shared filesystem and list that folder in launcher.shared_paths "
                        "(docs/cluster.md)")
