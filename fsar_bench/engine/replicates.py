"""Replicate groups: one command trained and evaluated with several seeds (issue #17).

A run's `ci95` covers episode sampling only; the training seed moves the number far more
(docs/statistics.md). `run_group` runs one replicate per seed around `runner.execute` (each
replicate is an ordinary run with its own folder, so an interrupted group resumes replicate by
replicate and finished replicates are reused), then reports the group statistics of
`fsar_bench.results.groups`. In MLflow the group is one parent run (tag `fsar.group` = the group
key) with a child per replicate; re-running the group adds no run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fsar_bench.errors import FsarError
from fsar_bench.results.record import (PRETRAINED, Environment, Identity, RunRecord, group_mlflow_params,
                                       rounded_metrics)

if TYPE_CHECKING:
    from fsar_bench.config import BenchConfig
    from fsar_bench.engine.runner import RunPlan, RunResult, RunSpec
    from fsar_bench.results.groups import GroupSummary

GROUP_FILE = "group.json"
GROUP_FORMAT = 1
GROUP_TAG = "fsar.group"  # on the MLflow parent run: the group key


def replicate_seeds(base: str, n: int) -> list[str]:
    """The seeds of `--seeds n`: the base seed first (so `--seeds 1` is the plain run), then
    `<base>.1`, `<base>.2`, ...: derived from the command alone, `--seeds 3` always means the same three."""
    if n < 1:
        raise FsarError(f"--seeds {n}: a group needs at least 1 replicate", "pass --seeds 3 (or 5 for a paper table)")
    return [str(base)] + [f"{base}.{i}" for i in range(1, n)]


def base_seed(spec: RunSpec, config: BenchConfig) -> str:
    """The training seed a run of `spec` uses: --seed, else bench.yaml `train.seed`, else the default."""
    from fsar_bench.engine.train import TrainConfig

    return str(spec.train.get("seed", (config["train"] or {}).get("seed", TrainConfig.seed)))


# -- identity of one run ----------------------------------------------------------------------

def stamp_identity(ident: Identity, env: Environment, method: Any, train_world_size: int = 1) -> None:
    """Complete a planned identity: code identity, leakage audit, group key and run key."""
    from fsar_bench.identity import code_identity, run_keys

    ident.code = code_identity(ident.method, method)
    ident.leakage = leakage_record(ident, type(method))
    ident.group_key, ident.run_key = run_keys(asdict(ident), env.hardware_class, train_world_size)


def leakage_record(ident: Identity, method_cls: Any) -> dict[str, Any]:
    """`leakage.audit` of a cross-dataset run, or of a pretrained method whose card declares its
    pretraining data; {} otherwise (a dataset's own splits are disjoint by construction)."""
    card = method_cls.card() if hasattr(method_cls, "card") else None
    pretraining = (getattr(card, "pretraining", "") or "") if ident.weights == PRETRAINED else ""
    if not ident.cross_dataset and not pretraining:
        return {}
    from fsar_bench.leakage import audit

    return audit(ident.train_dataset or ident.dataset, ident.dataset, pretraining or None).as_dict()


def reuse_finished(run: RunPlan, log: Callable[[str], None]) -> RunResult | None:
    """The finished run of the same key (its summary.json and all its episodes), announced; None
    when the run folder holds no finished run (then the run starts or resumes)."""
    from fsar_bench.engine.runner import RunResult

    path, episodes = run.run_dir / "summary.json", run.run_dir / "episodes.parquet"
    if not path.is_file() or not episodes.is_file():
        return None
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        df = pd.read_parquet(episodes).sort_values("episode").reset_index(drop=True)
    except (OSError, ValueError):
        return None  # damaged: the run resumes and rewrites it
    if summary.get("run_key") != run.record.identity.run_key or len(df) != run.spec.episodes:
        return None
    when = datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
    log(f"reused run from {when} on {summary.get('hardware_class') or 'unrecorded hardware'}: {run.run_dir} "
        "(same run key; delete the folder to run it again)")
    summary["reused"] = True
    return RunResult(summary, df, run.run_dir, summary.get("mlflow_run_id") or None, RunRecord.from_summary(summary))


# -- groups -----------------------------------------------------------------------------------

@dataclass
class GroupResult:
    """A finished replicate group: its runs (one per seed), statistics, folder and MLflow parent."""

    group_key: str
    name: str
    runs: list[RunResult]
    summary: GroupSummary
    group_dir: Path | None
    mlflow_run_id: str | None

    def document(self) -> dict[str, Any]:
        """group.json (and `run --seeds --json`)."""
        reps = [{"train_seed": r.summary.get("train_seed"), "run_key": r.summary.get("run_key"),
                 "run_dir": str(r.run_dir), "hardware_class": r.summary.get("hardware_class", ""),
                 "accuracy": r.summary.get("accuracy"), "ci95": r.summary.get("ci95"),
                 "mlflow_run_id": r.mlflow_run_id, "reused": bool(r.summary.get("reused"))} for r in self.runs]
        first = self.runs[0].summary
        return {"format": GROUP_FORMAT, "group_key": self.group_key, "name": self.name,
                "method": first.get("method"), "dataset": first.get("dataset"), "setting": first.get("setting"),
                "episode_digest": first.get("episode_digest"), "seeds": [r["train_seed"] for r in reps],
                "replicates": reps, "statistics": self.summary.as_dict(), "mlflow_run_id": self.mlflow_run_id}


def group_matrix(runs: list[RunResult]) -> np.ndarray:
    """[R, E] per-episode accuracies (fractions) of replicates scored on the same episodes."""
    from fsar_bench.results.groups import stack_replicates

    digests = {r.summary.get("episode_digest") for r in runs}
    if len(digests) != 1:
        raise FsarError("the replicates of a group were evaluated on different episodes",
                        "re-run the group with the same --episodes and --episode-seed")
    return stack_replicates([(str(r.summary.get("train_seed")),
                              r.results.sort_values("episode")["accuracy"].to_numpy(dtype=float)) for r in runs])


def run_group(spec: RunSpec, seeds: list[str], config: BenchConfig, progress: Any = None,
              log: Callable[[str], None] = print, vary: Callable[[RunSpec, str], RunSpec] | None = None,
              parent: str | None = None) -> GroupResult:
    """Train and evaluate one replicate per seed (each an ordinary, resumable run; a finished one is
    reused), under one MLflow parent run; then the group statistics, written to `group.json`.

    `vary(spec, seed)`: a replicate's spec when it depends on more than the seed (a re-scored sweep
    point starts from its own seed's weights, so its replicates also differ in `init_from` and the
    group is named by the first replicate's key); `parent`: the MLflow run the group's run is nested
    under (a sweep)."""
    from fsar_bench.engine import distributed as dist
    from fsar_bench.engine.runner import execute
    from fsar_bench.results.groups import summarize_group

    if len(set(seeds)) != len(seeds):
        raise FsarError(f"seed {next(s for s in seeds if seeds.count(s) > 1)!r} is given twice",
                        "give each --seed once")
    parent = GroupParent(config, nested_in=parent)
    runs = []
    for i, seed in enumerate(seeds):
        log(f"replicate {i + 1}/{len(seeds)}: seed {seed}")
        one = replace(spec, train={**spec.train, "seed": seed})
        # replicates of a varied group differ in key: they are attached to the group's run (found by the
        # first one's key) when all have run, so a resumed group finds the same run
        runs.append(execute(vary(one, seed) if vary else one, config, progress, log,
                            parent_run_id=None if vary else parent.open))
    keys = [r.summary.get("group_key") for r in runs]
    if len(set(keys)) != 1 and vary is None:  # cannot happen unless the code changed while the group ran
        raise FsarError("the replicates have different group keys (was the code edited during the run?)",
                        "re-run the same command: finished replicates are reused")
    summary = summarize_group(group_matrix(runs))
    group_key = keys[0]
    name = runs[0].run_dir.name.rsplit("-", 1)[0]
    result = GroupResult(group_key, name, runs, summary, None, None)
    if dist.is_main():
        result.mlflow_run_id = parent.finish(runs[0].record, runs, summary)
        result.group_dir = write_group(result, config.results_dir)
    return result


def write_group(result: GroupResult, results_dir: Path) -> Path:
    """`<results_dir>/<name>-group-<group key>-<digest of its run keys>/group.json`, atomically:
    two seed sets of one command are two group folders."""
    from fsar_bench.io import atomic_write

    runs = hashlib.sha256(",".join(sorted(str(r.summary.get("run_key")) for r in result.runs)).encode())
    folder = results_dir / f"{result.name}-group-{result.group_key}-{runs.hexdigest()[:6]}"
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / GROUP_FILE, json.dumps(result.document(), indent=2, sort_keys=True, default=str) + "\n")
    return folder


class GroupParent:
    """The MLflow parent run of a group: found by its group key, else created (rank 0 only); nested
    under `nested_in` (a sweep's parent run) when given."""

    def __init__(self, config: BenchConfig, nested_in: str | None = None) -> None:
        self.config = config
        self.tracker: Any = None
        self.nested_in = nested_in

    def open(self, rec: RunRecord) -> str:
        if self.tracker is not None and self.tracker.run_id:
            return self.tracker.run_id
        from fsar_bench.tracking import Tracker

        cfg = self.config
        self.tracker = Tracker(cfg.tracking_uri, cfg["experiment"], cfg.results_dir / "mlartifacts")
        key = rec.identity.group_key
        if not self.tracker.reopen(GROUP_TAG, key, parent=self.nested_in):
            i = rec.identity
            name = f"{i.method}-{i.dataset}-{i.setting}"
            if i.sweep:  # the points of a frames sweep share method, dataset and setting
                name = f"{i.sweep.get('name')} {i.sweep.get('axis')}={i.sweep.get('value')}"
            self.tracker.start(f"{name} (group)",
                               {"group_key": key, "method": i.method, "dataset": i.dataset, "setting": i.setting},
                               {GROUP_TAG: key, "fsar.kind": "group", "fsar.method": i.method}, parent=self.nested_in)
        return self.tracker.run_id

    def finish(self, rec: RunRecord, runs: list[RunResult], summary: GroupSummary) -> str:
        """Attach every replicate's MLflow run as a child (reused ones included), log the group
        statistics and the params its replicates share on the parent and mark it FINISHED; the
        parent's run id."""
        run_id = self.open(rec)
        client = self.tracker.client
        for r in runs:
            if r.mlflow_run_id:
                client.set_tag(r.mlflow_run_id, "mlflow.parentRunId", run_id)
        self.tracker.log_new_params(group_mlflow_params([r.record for r in runs if r.record is not None]))
        self.tracker.log_metrics(group_metrics(summary))
        self.tracker.set_tags({"fsar.seeds": ",".join(str(r.summary.get("train_seed")) for r in runs)[:5000]})
        self.tracker.end("FINISHED")
        return run_id


def group_metrics(summary: GroupSummary) -> dict[str, float]:
    """The MLflow metrics of a group's parent run, rounded like a run's: `ci95` is the group's headline
    uncertainty, as on the leaderboard: the half-width of the hierarchical 95% CI (seeds + episodes,
    docs/statistics.md eq. (6)) with >= 2 seeds, else of the episode CI (`episode_ci95`)."""
    episode_ci95 = (summary.episode_ci[1] - summary.episode_ci[0]) / 2
    metrics = {"accuracy": summary.mean, "ci95": episode_ci95, "replicates": summary.replicates,
               "episode_ci95": episode_ci95}
    if summary.hierarchical_ci is not None:
        metrics.update(ci95=(summary.hierarchical_ci[1] - summary.hierarchical_ci[0]) / 2, seed_sd=summary.seed_sd,
                       hierarchical_ci_low=summary.hierarchical_ci[0], hierarchical_ci_high=summary.hierarchical_ci[1],
                       seed_share=summary.seed_share, seed_share_single_run=summary.seed_share_single_run)
    return rounded_metrics({k: v for k, v in metrics.items() if v is not None})
