"""One benchmark run: build the method, train it episodically, evaluate on the canonical episodes, log.

The flow is one-way: dataset -> episodes -> Method.embed -> Matcher.score -> per-episode results
-> statistics -> MLflow. A run's folder (`<results_dir>/<name>-<key>`) is keyed by everything
that changes its result, so re-running an interrupted command resumes it.

Under torchrun (`fsar-bench run --nproc N`, docs/distributed.md) every rank executes the same
run: training episodes and evaluation work are split across the ranks, rank 0 alone writes the
run folder and logs to MLflow, and the evaluation results equal the single-process ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from fsar_bench.config import BenchConfig
from fsar_bench.data.cards import get_card
from fsar_bench.data.source import VideoSource
from fsar_bench.engine import distributed as dist
from fsar_bench.engine.batches import train_episodes
from fsar_bench.engine.evaluate import EvalOptions, ResultStore, accuracy_summary, clip_transform, evaluate
from fsar_bench.engine.train import TrainConfig, TrainData, TrainState, mean_tail
from fsar_bench.envinfo import environment
from fsar_bench.episodes import CANONICAL_EPISODES
from fsar_bench.episodes.locks import canonicity, make_set
from fsar_bench.episodes.sampler import EpisodeSet, EpisodeSpec
from fsar_bench.errors import FsarError
from fsar_bench.io import atomic_write
from fsar_bench.registry import create_method, method_class
from fsar_bench.seeding import seed_torch

Progress = Callable[[str, int, int], None]
# efficiency fields of fsar_bench.profile.profile_method logged with every run
PROFILE_FIELDS = ("flops_per_video", "flops_per_episode", "flops_matcher", "gmacs_per_frame", "latency_ms_median",
                  "latency_ms_p90", "peak_memory_mb")


@dataclass
class RunSpec:
    """Everything a run depends on. Unset fields take the method preset's or bench.yaml's value."""

    method: str
    dataset: str
    way: int = 5
    shot: int = 1
    query: int = 1
    episodes: int = CANONICAL_EPISODES
    preset: str | None = None  # default: 'tiny' on toy datasets, 'full' on real ones
    matcher: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # method hyperparameters
    frames: int | None = None
    train_dataset: str | None = None  # cross-dataset: train here, test on `dataset`
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig overrides
    no_train: bool = False
    cache: bool = True
    allow_missing: bool = False
    episode_seed: str | None = None  # another seed makes the run non-canonical
    root: str | None = None
    train_root: str | None = None
    episode_batch: int = 500  # episodes per matcher call and per results chunk (memory, not results)
    init_from: str | None = None  # start from these weights (a trained run's final.pt; sweeps re-score with it)

    def key(self, train_world_size: int = 1) -> str:
        """The run key; training on W > 1 ranks (W-fold updates, docs/distributed.md) gets its own."""
        data = asdict(self)
        for k in ("root", "train_root", "episode_batch"):
            data.pop(k)
        if train_world_size > 1:
            data["train_world_size"] = train_world_size
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass
class RunResult:
    summary: dict[str, Any]
    results: pd.DataFrame
    run_dir: Path
    mlflow_run_id: str | None


def _atomic_json(obj: Any, path: Path) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise FsarError(f"results folder {folder} is not writable ({exc.strerror or type(exc).__name__})",
                        "pass --results-dir or fix results_dir in bench.yaml") from None


def _device(config: BenchConfig) -> str:
    import torch

    dev = config["device"]
    if dev == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return dev


def _filtered_set(card, spec: EpisodeSpec, source: VideoSource, allow_missing: bool) -> tuple[EpisodeSet, list[str]]:
    """The episode set, after checking (real datasets) that its split's videos exist."""
    if card.is_toy:
        return make_set(card, spec), []
    missing = [f"{c}/{v}" for c, v in card.split(spec.split).entries if not source.path(c, v).exists()]
    if missing and not allow_missing:
        raise FsarError(f"{len(missing)} videos of the {spec.split} split of {card.name} are missing under "
                        f"{source.root} (first: {missing[0]})",
                        f"run `fsar-bench data check {card.name}` for the list, fix the root/layout, or pass "
                        "--allow-missing (the run is then non-canonical)")
    gone = set(missing)
    by_class = {c: [v for v in vids if f"{c}/{v}" not in gone] for c, vids in card.split(spec.split).by_class.items()}
    return EpisodeSet(spec, by_class), missing


def _data_version(card, missing: list[str], root: Path) -> str:
    """Which data the run saw: the toy generator version, or the availability digest (data/check.py)
    of the test videos present, so runs on regenerated or partial data can be told apart."""
    if card.is_toy:
        from fsar_bench.data.toy import data_version

        return f"toy-{card.toy['generator']}/v{data_version(card, root)}"  # generator version + manifest digest
    from fsar_bench.data.check import availability_digest

    gone = set(missing)
    return "test-videos/sha256:" + availability_digest(f"{c}/{v}" for c, v in card.split("test").entries
                                                       if f"{c}/{v}" not in gone)


def _train_root(spec: RunSpec) -> Path | None:
    """--train-root, else --root when training on the test dataset (one copy of the data)."""
    if spec.train_root:
        return Path(spec.train_root)
    same = spec.train_dataset in (None, spec.dataset)
    return Path(spec.root) if same and spec.root else None


def _preflight(spec: RunSpec, card, train_card, source: VideoSource, config: BenchConfig, train_cfg: TrainConfig,
               do_train: bool, missing: set[str], progress: Progress | None) -> list:
    """Open every real-dataset video the run will read (test split; train and val splits when training)
    before anything is written, so a corrupt file is a one-line error, not a failed run (data/preflight.py)."""
    from fsar_bench.data.preflight import Preflight

    cache = config.results_dir / "cache"
    work: list[tuple[VideoSource, list[tuple[str, str]]]] = []
    if not card.is_toy:
        work.append((source, [(c, v) for c, v in card.split("test").entries if f"{c}/{v}" not in missing]))
    if do_train and not train_card.is_toy:
        with dist.main_first():
            train_src = VideoSource.open(train_card, config, _train_root(spec))
        splits = ["train"] + (["val"] if train_cfg.val_every and "val" in train_card.split_files else [])
        work.append((train_src, [e for s in splits for e in train_card.split(s).entries]))
    probes = []
    for src, keys in work:
        probe = Preflight(src, cache)
        show = (lambda d, t, n=src.card.name: progress(f"opening {n} videos", d, t)) if progress else None
        probe.check(keys, show)
        probes.append(probe)
    return probes


def _train_config(cls, preset: str, config: BenchConfig, spec: RunSpec, device: str) -> TrainConfig:
    values = {**cls.train_presets.get(preset, {}), **config["train"], **spec.train}
    known = set(TrainConfig.__dataclass_fields__)
    bad = set(values) - known
    if bad:
        from fsar_bench.errors import unknown

        raise unknown("training option", sorted(bad)[0], known)
    values.setdefault("num_workers", config["num_workers"])
    return TrainConfig(**{**values, "device": device})


class _NoTracker:
    """What ranks other than 0 log to under torchrun: nothing."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return lambda *args, **kwargs: None


def execute(spec: RunSpec, config: BenchConfig, progress: Progress | None = None,
            log: Callable[[str], None] = print, parent_run_id: str | None = None) -> RunResult:
    """One run. Under torchrun every rank calls this; training and evaluation are split across the
    ranks, and rank 0 alone writes the run folder's files and logs to MLflow (docs/distributed.md)."""
    if config["threads"]:  # e.g. 1 on a shared or oversubscribed machine, where it can be many times faster
        torch.set_num_threads(config["threads"])
    device = dist.local_device(_device(config))
    dist.init(device)  # a no-op unless torchrun started several processes
    main, world = dist.is_main(), dist.world_size()
    if not main:
        progress, log = None, (lambda s: None)
    card = get_card(spec.dataset)
    train_card = get_card(spec.train_dataset or spec.dataset)
    card.check_disjoint()
    train_card.check_disjoint()
    preset = spec.preset or ("tiny" if card.is_toy else "full")
    cls = method_class(spec.method)
    if preset not in cls.presets:
        from fsar_bench.errors import unknown

        raise unknown(f"preset of method {spec.method!r},", preset, cls.presets)

    test_seed = spec.episode_seed or card.seeds["test"]
    ep_spec = EpisodeSpec(card.name, "test", spec.way, spec.shot, spec.query, spec.episodes, test_seed)
    make_set(card, ep_spec).sampler  # noqa: B018  (validates way/shot/query against the split now)

    prepare = (lambda d, t: progress(f"preparing {card.name}", d, t)) if progress else None
    with dist.main_first():  # rank 0 generates a toy dataset, the others then find it
        source = VideoSource.open(card, config, Path(spec.root) if spec.root else None, progress=prepare)
    overrides = {**config.method_overrides(spec.method, preset), **spec.overrides}
    if spec.frames is not None:
        overrides["frames"] = spec.frames
    train_cfg = _train_config(cls, preset, config, spec, device)
    seed_torch(train_cfg.seed, "init")  # random-init weights are reproducible too
    method = create_method(spec.method, preset, matcher=spec.matcher, **overrides)
    if spec.init_from:
        from fsar_bench.engine.checkpoint import load_file

        load_file(method, spec.init_from)
    dist.broadcast_module(method)  # every rank starts from rank 0's weights
    do_train = not spec.no_train and train_cfg.steps > 0 and spec.shot > 0

    episodes, missing = _filtered_set(card, ep_spec, source, spec.allow_missing)
    canon = canonicity(card, episodes) if not missing else None
    canonical = bool(canon and canon.canonical)
    why = canon.reason if canon else f"{len(missing)} missing videos (--allow-missing)"

    data_version = _data_version(card, missing, source.root)
    run_key = spec.key(world if do_train else 1)
    from fsar_bench.tracking import check_reachable

    check_reachable(config.tracking_uri)  # before anything is written or trained
    probes = _preflight(spec, card, train_card, source, config, train_cfg, do_train, set(missing), progress)
    _check_writable(config.results_dir)
    for probe in probes:
        probe.save()
    name = f"{spec.method}-{card.name}-{spec.way}w{spec.shot}s"
    run_dir = config.results_dir / f"{name}-{run_key}"
    run_dir.mkdir(parents=True, exist_ok=True)
    if main:
        _atomic_json({"spec": asdict(spec), "preset": preset, "world_size": world}, run_dir / "run.json")

    from fsar_bench.tracking import Tracker

    tracker = (Tracker(config.tracking_uri, config["experiment"], config.results_dir / "mlartifacts") if main
               else _NoTracker())
    env = environment()
    counts = method.parameter_counts()
    params = {
        "method": spec.method, "matcher": getattr(method, "matcher_name", ""), "preset": preset,
        "backbone": method.hparams.get("backbone") or method.hparams.get("clip_model") or "", "dataset": card.name, "train_dataset": train_card.name,
        "cross_dataset": train_card.name != card.name, "way": spec.way, "shot": spec.shot, "query": spec.query,
        "frames": method.frames, "image_size": method.image_size, "episodes": spec.episodes,
        "episode_seed": test_seed, "episode_digest": episodes.digest, "canonical": canonical, "data_version": data_version,
        "train_seed": train_cfg.seed, "weights_source": method.weights_source, "run_key": run_key,
        "cache": spec.cache, "init_from": spec.init_from or "", "trained": do_train, **{f"hp.{k}": v for k, v in method.hparams.items()},
        **{f"train.{k}": v for k, v in asdict(train_cfg).items()}, **env, **_world_params(world, train_cfg),
    }
    tags = {"fsar.run_key": run_key, "fsar.canonical": str(canonical).lower(),
            "fsar.weights": "random-init" if method.weights_source == "random-init" else "pretrained",
            "fsar.setting": f"{spec.way}w{spec.shot}s", "fsar.dataset": card.name, "fsar.method": spec.method}
    resumed = tracker.mark_stale_runs_killed(run_key)
    run_id = tracker.start(name, params, {**tags, "fsar.resumed": str(bool(resumed)).lower()}, parent=parent_run_id)
    log(f"run {name} ({'canonical' if canonical else 'NON-CANONICAL: ' + why}; weights {method.weights_source}; "
        f"preset {preset}) -> {run_dir}")
    status = "FAILED"
    try:
        state = TrainState()
        if do_train:
            state = _train(method, spec, train_card, config, train_cfg, run_dir, tracker, progress)
        # a method may change a hyperparameter while training (I2ST drops its mask loss on data without
        # masks); MLflow params are write-once, so the value in force is logged beside the requested one
        changed = {k: v for k, v in method.hparams.items() if params.get(f"hp.{k}", v) != v or f"hp.{k}" not in params}
        if changed:
            tracker.log_params({f"hp.{k}.effective": v for k, v in changed.items()})
        method.set_dataset(card)
        t0 = time.perf_counter()
        store = ResultStore(run_dir / ("episodes" if spec.cache else "episodes-nocache"))
        df = evaluate(method, source, episodes, store, EvalOptions(cache=spec.cache, device=device, batch_episodes=spec.episode_batch),
                      cache_dir=config.results_dir / "cache", progress=progress)
        eval_seconds = time.perf_counter() - t0
        if len(df) != spec.episodes:
            raise RuntimeError(f"evaluation produced {len(df)} episodes, expected {spec.episodes}")
        summary = {
            **accuracy_summary(df), "method": spec.method, "matcher": params["matcher"], "preset": preset,
            "dataset": card.name, "train_dataset": train_card.name, "setting": f"{spec.way}w{spec.shot}s",
            "way": spec.way, "shot": spec.shot, "query": spec.query, "frames": method.frames,
            "episode_digest": episodes.digest, "canonical": canonical, "canonical_reason": why, "data_version": data_version,
            "weights_source": method.weights_source, **counts, "train_steps": state.step,
            "train_seconds": state.seconds, "train_loss_last20": mean_tail(state.losses),
            "val_best": state.best_val, "val_best_step": state.best_step, "eval_seconds": eval_seconds,
            "run_key": run_key, "mlflow_run_id": run_id, "environment": env, "world_size": world,
            "hparams_changed": changed,
        }
        if main:
            from fsar_bench.profile import profile_method

            profile = profile_method(method, way=spec.way, shot=spec.shot, query=spec.query, device=device,
                                     warmup=1, repeats=3)
            summary.update({k: profile[k] for k in PROFILE_FIELDS if k in profile})
            summary["hardware_key"] = profile.get("hardware_key", "")
            df.to_parquet(run_dir / "episodes.parquet", index=False)
            _atomic_json(summary, run_dir / "summary.json")
            tracker.log_metrics({k: summary[k] for k in ("accuracy", "accuracy_std", "ci95", "episodes",
                                                         "train_seconds", "eval_seconds", "params_total",
                                                         "params_trainable", *PROFILE_FIELDS) if k in summary})
            tracker.set_tags({"fsar.hardware": summary["hardware_key"][:250]})
            tracker.log_artifact(run_dir / "episodes.parquet")
            tracker.log_artifact(run_dir / "summary.json")
        summary = dist.broadcast_object(summary)  # every rank returns rank 0's summary
        status = "FINISHED"
        return RunResult(summary, df, run_dir, summary["mlflow_run_id"])
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        tracker.end(status)


def _world_params(world: int, train_cfg: TrainConfig) -> dict[str, Any]:
    """What a torchrun run records about its ranks (docs/distributed.md)."""
    if world == 1:
        return {"world_size": 1}
    return {"world_size": world, "dist_backend": dist.backend(),
            "train.episodes_per_update_total": train_cfg.episodes_per_update * world,
            "train.rank_episodes": f"episode i -> rank i % {world}",
            "train.rank_seeds": f"rank r: episodes i = r, r+{world}, ...; episode i sampled and augmented from "
                                f"(train/{train_cfg.seed}, i), torch seeded from ({train_cfg.seed}, step, i)"}


def _train(method, spec: RunSpec, train_card, config: BenchConfig, train_cfg: TrainConfig, run_dir: Path,
           tracker, progress: Progress | None) -> TrainState:
    with dist.main_first():
        src = VideoSource.open(train_card, config, _train_root(spec))
    jitter = 0.2
    train_way = min(spec.way, len(train_card.split("train").by_class))
    episodes = train_episodes(method, src, train_way, spec.shot, train_cfg.train_query, train_cfg.steps,
                              f"train/{train_cfg.seed}", clip_transform(method, src, jitter))
    validate = None
    if train_cfg.val_every and "val" in train_card.split_files:
        n_val = len(train_card.split("val").by_class)
        val_spec = EpisodeSpec(train_card.name, "val", min(5, n_val), spec.shot, 1, train_cfg.val_episodes,
                               train_card.seeds.get("val", "val"))
        val_set = make_set(train_card, val_spec)

        def validate(m) -> float:
            return accuracy_summary(evaluate(m, src, val_set, None, EvalOptions(device=train_cfg.device)))["accuracy"]

    last_logged = {"step": -1}

    def log(metrics: dict[str, float], step: int) -> None:
        if "val_accuracy" in metrics or step - last_logged["step"] >= 10:
            tracker.log_metrics(metrics, step)
            last_logged["step"] = step

    method.set_dataset(train_card)
    data = TrainData(episodes, validate, run_dir, log,
                     (lambda d, t: progress("training episodes", d, t)) if progress else None)
    return method.fit(data, train_cfg)
