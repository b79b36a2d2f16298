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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from fsar_bench.config import BenchConfig
from fsar_bench.data.cards import get_card
from fsar_bench.data.source import VideoSource
from fsar_bench.engine import distributed as dist
from fsar_bench.engine.batches import train_episodes
from fsar_bench.engine.evaluate import EvalOptions, ResultStore, accuracy_summary, evaluate
from fsar_bench.engine.train import TrainConfig, TrainData, TrainState, mean_tail
from fsar_bench.envinfo import environment
from fsar_bench.episodes import CANONICAL_EPISODES
from fsar_bench.episodes.locks import canonicity, make_set
from fsar_bench.episodes.sampler import EpisodeSet, EpisodeSpec
from fsar_bench.engine.replicates import reuse_finished, stamp_identity
from fsar_bench.errors import FsarError
from fsar_bench.identity import configure_determinism, hardware_class
from fsar_bench.io import atomic_path, atomic_write
from fsar_bench.registry import create_method, method_class
from fsar_bench.results.per_class import extremes, per_class_accuracy, read_csv, write_csv
from fsar_bench.results.record import (PROFILE_FIELDS, Efficiency, Environment, Identity, Results, RunRecord,
                                       weights_class)
from fsar_bench.seeding import seed_torch

Progress = Callable[[str, int, int], None]


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
    recipe: str | None = None  # a named variant of the method's recipe table (`--recipe`, docs/recipes.md)
    official: str | None = None  # init_from is an authors' release, loaded through this key map of the method
    weights_origin: dict[str, str] = field(default_factory=dict)  # `fsar-bench eval`: sha256, format, trained_by
    num_workers: int | None = None  # data loader workers (None: bench.yaml, else automatic); never in the key
    precision: str = "fp32"  # bf16 / fp16: autocast on CUDA (docs/evaluation.md)
    sweep: dict[str, str] = field(default_factory=dict)  # the sweep this run is a point of (record `identity.sweep`)

    def key(self, train_world_size: int = 1) -> str:
        """The run key; training on W > 1 ranks (W-fold updates, docs/distributed.md) gets its own."""
        data = asdict(self)
        for k in ("root", "train_root", "episode_batch"):
            data.pop(k)
        if data["recipe"] is None:  # keys of runs without a variant stay as before recipes existed
            data.pop("recipe")
        data.pop("num_workers")  # results do not depend on it (tests/test_embed_loader.py)
        for k, default in (("official", None), ("weights_origin", {}), ("precision", "fp32"), ("sweep", {})):
            if data[k] == default:  # keys of runs without them stay as before
                data.pop(k)
        if train_world_size > 1:
            data["train_world_size"] = train_world_size
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def arguments(self) -> dict[str, Any]:
        """The spec as recorded (`Identity.spec`): every field but this machine's data roots, which
        bench.yaml decides wherever the run is repeated; `from_arguments` rebuilds it (`reproduce`)."""
        data = json.loads(json.dumps(asdict(self), default=str))
        for k in ("root", "train_root"):
            data.pop(k)
        return data

    @classmethod
    def from_arguments(cls, data: dict[str, Any]) -> RunSpec:
        """The spec of recorded arguments (`arguments()`); a field this version does not know is an error."""
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise FsarError(f"the recorded run arguments hold {', '.join(unknown)}, unknown to this fsar-bench",
                            "upgrade fsar-bench to the version that wrote the record")
        return cls(**data)


@dataclass
class RunResult:
    """A finished run: its summary.json object, per-episode results, folder, MLflow run and record."""

    summary: dict[str, Any]
    results: pd.DataFrame
    run_dir: Path
    mlflow_run_id: str | None
    record: RunRecord | None = None


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


def _missing_in(card, source: VideoSource, split: str) -> list[str]:
    return [f"{c}/{v}" for c, v in card.split(split).entries if not source.path(c, v).exists()]


def _availability(spec: RunSpec, card, train_card, source: VideoSource, config: BenchConfig, missing: list[str],
                  train_splits: list[str]) -> tuple[dict[str, Any], set[str]]:
    """Per split with missing videos (`--allow-missing`): present / total counts and the availability
    digest (data/check.py) of the videos present; and the training videos to leave out. Without
    --allow-missing a missing training or validation video is a one-line error."""
    from fsar_bench.data.check import availability_digest

    found: list[tuple[str, Any, str, list[str]]] = [] if card.is_toy else [("test", card, "test", missing)]
    if train_splits and not train_card.is_toy:
        with dist.main_first():
            train_src = VideoSource.open(train_card, config, _train_root(spec))
        for split in train_splits:
            gone = _missing_in(train_card, train_src, split)
            if gone and not spec.allow_missing:
                raise FsarError(f"{len(gone)} videos of the {split} split of {train_card.name} are missing under "
                                f"{train_src.root} (first: {gone[0]})",
                                f"run `fsar-bench data check {train_card.name}`, fix the root/layout, or pass "
                                "--allow-missing (trains on the videos present; the run is then non-canonical)")
            name = split if train_card.name == card.name else f"{train_card.name}/{split}"
            found.append((name, train_card, split, gone))
    out: dict[str, Any] = {}
    for name, owner, split, gone in found:
        if gone:
            gone_set = set(gone)
            present = [f"{c}/{v}" for c, v in owner.split(split).entries if f"{c}/{v}" not in gone_set]
            out.update({f"{name}.present": len(present), f"{name}.total": len(owner.split(split).entries),
                        f"{name}.digest": "sha256:" + availability_digest(present)})
    return out, {k for name, _, _, gone in found if name != "test" for k in gone}


def _apply_availability(run_parts: tuple, ident: Identity, config: BenchConfig, train_cfg: TrainConfig,
                        do_train: bool) -> set[str]:
    """Check the training and validation videos too; on partial data record the per-split counts and
    digests, make the run non-canonical and say what fraction is present. The videos to leave out."""
    spec, card, train_card, source, missing = run_parts
    splits = _train_splits(train_card, train_cfg) if do_train else []
    avail, train_missing = _availability(spec, card, train_card, source, config, missing, splits)
    if avail:
        ident.data_availability = avail
        ident.canonical, ident.canonical_reason = False, _availability_reason(avail)
    return train_missing


def _train_splits(train_card, train_cfg: TrainConfig) -> list[str]:
    return ["train"] + (["val"] if train_cfg.val_every and "val" in train_card.split_files else [])


def _availability_reason(avail: dict[str, Any]) -> str:
    """'test 290/300 (96.7%), train 6,100/6,400 (95.3%) videos present (--allow-missing)'."""
    parts = [f"{name} {avail[name + '.present']:,}/{avail[name + '.total']:,} "
             f"({100 * avail[name + '.present'] / max(1, avail[name + '.total']):.1f}%)"
             for name in dict.fromkeys(k.rsplit(".", 1)[0] for k in avail)]
    return ", ".join(parts) + " videos present (--allow-missing)"


def _train_root(spec: RunSpec) -> Path | None:
    """--train-root, else --root when training on the test dataset (one copy of the data)."""
    if spec.train_root:
        return Path(spec.train_root)
    same = spec.train_dataset in (None, spec.dataset)
    return Path(spec.root) if same and spec.root else None


def _preflight(spec: RunSpec, card, train_card, source: VideoSource, config: BenchConfig, train_cfg: TrainConfig,
               do_train: bool, missing: set[str], progress: Progress | None, frames: int = 8) -> list:
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
        work.append((train_src, [e for s in _train_splits(train_card, train_cfg) for e in train_card.split(s).entries
                                 if f"{e[0]}/{e[1]}" not in missing]))
    probes = []
    for src, keys in work:
        probe = Preflight(src, cache, frames=frames)  # frame folders: the run's test frames are decoded
        show = (lambda d, t, n=src.card.name: progress(f"opening {n} videos", d, t)) if progress else None
        probe.check(keys, show)
        probes.append(probe)
    return probes


def resolve_run_recipe(spec: RunSpec, config: BenchConfig, preset: str, train_card) -> Any:
    """The run's training recipe (fsar_bench/recipes.py), resolved on the TRAINING dataset: the table's
    values, then bench.yaml `train` and its method hyperparameters, --frames, --steps/--lr and --set."""
    from fsar_bench.errors import unknown
    from fsar_bench.recipes import FIELDS, METHOD_FIELDS, override_layers, resolve_recipe

    bad = sorted((set(config["train"]) | set(spec.train)) - set(FIELDS) - {"seed"})
    if bad:
        raise unknown("training option", bad[0], [*FIELDS, "seed"])
    bench_methods = {k: v for k, v in config.method_overrides(spec.method, preset).items() if k in METHOD_FIELDS}
    cli = {**spec.train, "frames": spec.frames}
    layers = override_layers(config["train"], cli, spec.overrides)
    if bench_methods:
        layers.insert(1 if config["train"] else 0, (f"bench.yaml methods.{spec.method}.{preset}", bench_methods))
    return resolve_recipe(method_class(spec.method), train_card.name, spec.shot, preset, overrides=layers,
                          variant=spec.recipe)


# hyperparameters that choose a method's initial weights (the core's naming conventions, not a method's)
WEIGHT_KEYS = ("backbone", "clip_model", "pretrained", "weights", "weights_tag")


def dry_run(spec: RunSpec, config: BenchConfig) -> str:
    """What `run --dry-run` prints: the run's setting, method hyperparameters, weights and recipe (every
    value with its source), resolved without opening videos, building the model or writing anything."""
    from fsar_bench.recipes import method_sets
    from fsar_bench.weights import paper_weights

    card, train_card, preset, ep_spec = resolve(spec)
    recipe = resolve_run_recipe(spec, config, preset, train_card)
    cls = method_class(spec.method)
    given = {**config.method_overrides(spec.method, preset), **method_sets(spec.overrides)}
    hparams = {**cls.presets[preset], **given, **recipe.method_overrides()}
    matcher = spec.matcher or getattr(cls, "default_matcher", "") or "-"
    train = f"trains on {train_card.name} {recipe.shot_in_training}-shot" if recipe.steps.value and \
        not spec.no_train and spec.shot > 0 else "no training"
    lines = [f"run {spec.method} on {card.name} {ep_spec.setting}, {spec.episodes} test episodes "
             f"(preset {preset}; matcher {matcher}; {train})",
             "method hyperparameters: " + ", ".join(f"{k}={v}" for k, v in sorted(hparams.items())),
             f"weights: {spec.init_from} (--init-from)" if spec.init_from else
             _weights_line(paper_weights(cls, preset), hparams, given, cls.presets[preset], preset),
             recipe.format(), "dry run: nothing was trained, evaluated or written"]
    return "\n".join(lines)


def _weights_line(paper: str | None, hparams: dict[str, Any], given: dict[str, Any], preset_hp: dict[str, Any],
                  preset: str) -> str:
    """The weights the run starts from as far as known before the model is built, with weights_status."""
    from fsar_bench.weights import weights_status

    changed = sorted(k for k in WEIGHT_KEYS if k in given and given[k] != preset_hp.get(k))
    if changed:
        return (f"weights: chosen by {', '.join(f'{k}={given[k]}' for k in changed)} (known when the model is "
                f"built); paper weights: {paper or 'none declared'}")
    if paper:
        return f"weights: {paper} (method card, preset {preset}); weights_status: {weights_status(paper, paper)}"
    if not hparams.get("pretrained") and not hparams.get("weights"):
        return f"weights: random-init; weights_status: {weights_status(None, 'random-init')}"
    return f"weights: pretrained, tag known when the model is built (the method card declares none for {preset})"


def num_workers(spec: RunSpec, config: BenchConfig, device: str) -> int:
    """DataLoader workers: `--num-workers`, else bench.yaml's; 'auto' is min(8, cores - 1) on CUDA, where
    decoding in this process starves the GPU, and 0 on CPU, where the model's threads use every core
    (benchmarks/bench_embed_workers.py measures both). Results do not depend on it."""
    asked = spec.num_workers if spec.num_workers is not None else config["num_workers"]
    if asked != "auto":
        return int(asked)
    return max(0, min(8, (os.cpu_count() or 1) - 1)) if str(device).startswith("cuda") else 0


def _train_config(recipe: Any, config: BenchConfig, spec: RunSpec, device: str) -> TrainConfig:
    """TrainConfig from the recipe; the seed, device and data loader workers are the run's."""
    seed = {**config["train"], **spec.train}.get("seed", TrainConfig.seed)
    return TrainConfig(**recipe.train_config(), seed=seed, device=device,
                       num_workers=num_workers(spec, config, device))


@dataclass
class RunPlan:
    """A run resolved before anything is written: dataset cards, episode set, method, configs, record.

    `record` holds the run's identity and environment (results and efficiency are filled at the end);
    `lock` is the open lock file of the run folder while this process owns it (rank 0 only).
    """

    spec: RunSpec
    card: Any  # fsar_bench.data.cards.DatasetCard
    train_card: Any
    preset: str
    device: str
    source: VideoSource
    episodes: EpisodeSet
    missing: list[str]
    train_cfg: TrainConfig
    method: Any  # fsar_bench.protocol.Method
    do_train: bool
    record: RunRecord
    run_dir: Path
    name: str
    lock: Any = None
    recipe: Any = None  # fsar_bench.recipes.ResolvedRecipe
    train_missing: set[str] = field(default_factory=set)  # training/validation videos absent (--allow-missing)


class _NoTracker:
    """What ranks other than 0 log to under torchrun: nothing."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return lambda *args, **kwargs: None


def execute(spec: RunSpec, config: BenchConfig, progress: Progress | None = None,
            log: Callable[[str], None] = print, parent_run_id: str | Callable[[RunRecord], str] | None = None
            ) -> RunResult:
    """One run: plan -> preflight -> train -> evaluate -> record. Under torchrun every rank calls this;
    training and evaluation are split across the ranks, and rank 0 alone writes the run folder's files
    and logs to MLflow (docs/distributed.md). Interrupted runs resume; bad input is an FsarError."""
    device, main = _start_processes(config, spec)
    if not main:
        progress, log = None, (lambda s: None)
    run = plan(spec, config, device, progress)
    if (reused := reuse_finished(run, log)) is not None:  # a finished key: no new training, no new MLflow run
        return reused
    try:
        preflight(run, config, progress)
        tracker = _open_tracker(run, config, parent_run_id, main)
        log(_banner(run))
        status = "FAILED"
        try:
            state = train(run, config, tracker, progress)
            df, seconds = evaluate_run(run, config, progress)
            rec = record(run, state, df, seconds, tracker, main)
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            tracker.end(status)
    except OSError as exc:
        raise _disk_error(exc, config) from None
    finally:
        _release(run)
    summary = dist.broadcast_object(rec.to_summary())  # every rank returns rank 0's summary
    return RunResult(summary, df, run.run_dir, summary["mlflow_run_id"], RunRecord.from_summary(summary))


def _start_processes(config: BenchConfig, spec: RunSpec) -> tuple[str, bool]:
    """Threads, determinism, device and (under torchrun) the process group; (device, is rank 0).
    A tiny CPU run gets 1 thread unless bench.yaml says otherwise (reproducible across machines, and
    fastest on shared cores); CPU runs use torch's deterministic algorithms (docs/results.md §5)."""
    device = dist.local_device(_device(config))
    tiny = (spec.preset or ("tiny" if get_card(spec.dataset).is_toy else "full")) == "tiny"
    configure_determinism(device, config["threads"], tiny)
    dist.init(device)  # a no-op unless torchrun started several processes
    return device, dist.is_main()


def resolve(spec: RunSpec) -> tuple[Any, Any, str, EpisodeSpec]:
    """Cards, preset and the test episode spec, validated (unknown names, impossible shapes: FsarError)."""
    card = get_card(spec.dataset)
    train_card = get_card(spec.train_dataset or spec.dataset)
    card.check_disjoint()
    train_card.check_disjoint()
    preset = spec.preset or ("tiny" if card.is_toy else "full")
    cls = method_class(spec.method)
    if preset not in cls.presets:
        from fsar_bench.errors import unknown

        raise unknown(f"preset of method {spec.method!r},", preset, cls.presets)
    ep_spec = EpisodeSpec(card.name, "test", spec.way, spec.shot, spec.query, spec.episodes,
                          spec.episode_seed or card.seeds["test"])
    make_set(card, ep_spec).sampler  # noqa: B018  (validates way/shot/query against the split now)
    return card, train_card, preset, ep_spec


def plan(spec: RunSpec, config: BenchConfig, device: str, progress: Progress | None = None) -> RunPlan:
    """Resolve everything a run needs, writing nothing but a generated toy dataset. The test data is
    checked (missing videos) before the method is built, so a wrong root is reported before a model
    that downloads weights is created."""
    card, train_card, preset, ep_spec = resolve(spec)
    prepare = (lambda d, t: progress(f"preparing {card.name}", d, t)) if progress else None
    with dist.main_first():  # rank 0 generates a toy dataset, the others then find it
        source = VideoSource.open(card, config, Path(spec.root) if spec.root else None, progress=prepare)
    episodes, missing = _filtered_set(card, ep_spec, source, spec.allow_missing)
    recipe = resolve_run_recipe(spec, config, preset, train_card)
    train_cfg = _train_config(recipe, config, spec, device)
    method = _build_method(spec, preset, config, train_cfg, recipe)
    do_train = not spec.no_train and train_cfg.steps > 0 and spec.shot > 0
    world = dist.world_size()
    name = run_name(spec, card.name, ep_spec.setting)
    ident = _identity(spec, card, train_card, preset, episodes, missing, method, train_cfg, do_train, "",
                      source.root)
    ident.recipe = recipe.as_params()
    train_missing = _apply_availability((spec, card, train_card, source, missing), ident, config, train_cfg, do_train)
    env = Environment(versions=dict(environment()), world_size=world, distributed=_world_params(world, train_cfg),
                      hardware_class=hardware_class(device), deterministic=torch.are_deterministic_algorithms_enabled())
    env.num_workers = train_cfg.num_workers  # the resolved `num_workers` (auto: see num_workers())
    stamp_identity(ident, env, method, world if do_train else 1)
    return RunPlan(spec, card, train_card, preset, device, source, episodes, missing, train_cfg, method, do_train,
                   RunRecord(ident, env), config.results_dir / f"{name}-{ident.run_key}", name, recipe=recipe,
                   train_missing=train_missing)


def run_name(spec: RunSpec, dataset: str, setting: str) -> str:
    """`method[+matcher]-dataset-setting[-Nf][-from-train]`: the points of a sweep (frames, matcher,
    cross-dataset) get distinct run and folder names, and `compare` labels them apart."""
    name = f"{spec.method}+{spec.matcher}" if spec.matcher else spec.method
    name = f"{name}-{dataset}-{setting}"
    if spec.frames is not None:
        name += f"-{spec.frames}f"
    if spec.train_dataset and spec.train_dataset != spec.dataset:
        name += f"-from-{spec.train_dataset}"
    return name


def _build_method(spec: RunSpec, preset: str, config: BenchConfig, train_cfg: TrainConfig, recipe: Any) -> Any:
    """The method from its preset, bench.yaml and --set overrides and the recipe's frames / image size,
    seeded, with --init-from weights, identical on every rank."""
    from fsar_bench.recipes import method_sets

    given = {k: v for k, v in recipe.method_overrides().items()  # an __init__ default needs no passing
             if not recipe.get(k).source.endswith("__init__ default")}
    overrides = {**config.method_overrides(spec.method, preset), **method_sets(spec.overrides), **given}
    seed_torch(train_cfg.seed, "init")  # random-init weights are reproducible too
    method = create_method(spec.method, preset, matcher=spec.matcher, **overrides)
    if spec.init_from:
        from fsar_bench.engine.checkpoint import load_file, load_official, official_map

        if spec.official:
            load_official(method, spec.init_from, official_map(type(method), spec.official))
        else:
            load_file(method, spec.init_from)
    dist.broadcast_module(method)  # every rank starts from rank 0's weights
    return method


def _identity(spec: RunSpec, card, train_card, preset: str, episodes: EpisodeSet, missing: list[str], method,
              train_cfg: TrainConfig, do_train: bool, run_key: str, root: Path) -> Identity:
    """What the run is: the identity section of its record."""
    canon = canonicity(card, episodes) if not missing else None
    hp = dict(method.hparams)
    return Identity(
        method=spec.method, dataset=card.name, way=spec.way, shot=spec.shot, query=spec.query,
        episodes=spec.episodes, matcher=getattr(method, "matcher_name", ""), preset=preset,
        backbone=hp.get("backbone") or hp.get("clip_model") or "", train_dataset=train_card.name,
        frames=method.frames, image_size=method.image_size, overrides=dict(spec.overrides), hparams=hp,
        train_config=asdict(train_cfg), trained=do_train, train_steps=train_cfg.steps if do_train else 0,
        train_seed=str(train_cfg.seed), episode_seed=episodes.spec.seed, episode_digest=episodes.digest,
        canonical=bool(canon and canon.canonical),
        canonical_reason=canon.reason if canon else f"{len(missing)} missing videos (--allow-missing)",
        data_version=_data_version(card, missing, root), weights_source=method.weights_source,
        weights=weights_class(method.weights_source), init_from=spec.init_from or "", cache=spec.cache,
        run_key=run_key, evaluated_only=bool(spec.weights_origin) and not do_train,
        weights_origin=dict(spec.weights_origin), precision=spec.precision, spec=spec.arguments(),
        sweep=dict(spec.sweep))


def preflight(run: RunPlan, config: BenchConfig, progress: Progress | None) -> None:
    """Before anything is trained: the tracking server answers, every real-dataset video the run
    reads opens, the results folder is writable, this process owns the run folder (lock) and the
    folder holds no damaged or half-written file from an earlier attempt."""
    from fsar_bench.tracking import check_reachable

    check_reachable(config.tracking_uri)
    probes = _preflight(run.spec, run.card, run.train_card, run.source, config, run.train_cfg, run.do_train,
                        set(run.missing) | run.train_missing, progress, frames=run.method.frames)
    _check_writable(config.results_dir)
    for probe in probes:
        probe.save()
    run.run_dir.mkdir(parents=True, exist_ok=True)
    if dist.is_main():
        run.lock = _lock_run_dir(run.run_dir)
        _clean_run_dir(run.run_dir)
        _atomic_json({"spec": asdict(run.spec), "preset": run.preset, "world_size": dist.world_size()},
                     run.run_dir / "run.json")


def _open_tracker(run: RunPlan, config: BenchConfig, parent_run_id: str | Callable[[RunRecord], str] | None,
                  main: bool) -> Any:
    """The MLflow run of this run (rank 0), started with the record's params and tags; runs of the same
    key left RUNNING by a dead process are marked KILLED first. `parent_run_id` may be a function of the
    record (a replicate group opens its MLflow parent run once it knows the group key)."""
    if not main:
        return _NoTracker()
    if callable(parent_run_id):
        parent_run_id = parent_run_id(run.record)
    from fsar_bench.tracking import Tracker

    tracker = Tracker(config.tracking_uri, config["experiment"], config.results_dir / "mlartifacts")
    resumed = tracker.mark_stale_runs_killed(run.record.identity.run_key)
    tags = {**run.record.mlflow_tags(), "fsar.resumed": str(bool(resumed)).lower()}
    tracker.start(run.name, run.record.mlflow_params(), tags, parent=parent_run_id)
    return tracker


def _banner(run: RunPlan) -> str:
    i = run.record.identity
    state = "canonical" if i.canonical else "NON-CANONICAL: " + i.canonical_reason
    return f"run {run.name} ({state}; weights {i.weights_source}; preset {run.preset}) -> {run.run_dir}"


def train(run: RunPlan, config: BenchConfig, tracker: Any, progress: Progress | None) -> TrainState:
    """Train episodically when the run trains (checkpoints in the run folder: resumable), then log
    hyperparameters the method changed while training; an empty TrainState otherwise."""
    state = TrainState()
    if run.do_train:
        state = _train(run, config, tracker, progress)
    # a method may change a hyperparameter while training (I2ST drops its mask loss on data without
    # masks); MLflow params are write-once, so the value in force is logged beside the requested one
    asked = run.record.identity.hparams
    changed = {k: v for k, v in run.method.hparams.items() if k not in asked or asked[k] != v}
    run.record.results.hparams_changed = changed
    if changed:
        tracker.log_params({f"hp.{k}.effective": v for k, v in changed.items()})
    return state


def evaluate_run(run: RunPlan, config: BenchConfig, progress: Progress | None) -> tuple[pd.DataFrame, float]:
    """Score every test episode (resuming from the results chunks already in the run folder);
    (per-episode results, seconds). Guarantees one row per requested episode."""
    run.method.set_dataset(run.card)
    t0 = time.perf_counter()
    store = ResultStore(run.run_dir / ("episodes" if run.spec.cache else "episodes-nocache"))
    options = EvalOptions(cache=run.spec.cache, device=run.device, batch_episodes=run.spec.episode_batch,
                          num_workers=run.train_cfg.num_workers, precision=run.spec.precision)
    df = evaluate(run.method, run.source, run.episodes, store, options, cache_dir=config.results_dir / "cache",
                  progress=progress)
    if len(df) != run.spec.episodes:
        raise RuntimeError(f"evaluation produced {len(df)} episodes, expected {run.spec.episodes}")
    return df, time.perf_counter() - t0


def record(run: RunPlan, state: TrainState, df: pd.DataFrame, eval_seconds: float, tracker: Any,
           main: bool) -> RunRecord:
    """Complete the run's record (results; on rank 0 also the efficiency profile of the trained model)
    and, on rank 0, write episodes.parquet and summary.json atomically and log both with the metrics."""
    rec, spec = run.record, run.spec
    acc = accuracy_summary(df)
    rec.results = Results(accuracy=acc["accuracy"], accuracy_std=acc["accuracy_std"], ci95=acc["ci95"],
                          train_steps=state.step, train_seconds=state.seconds,
                          train_loss_last20=mean_tail(state.losses), val_best=state.best_val,
                          val_best_step=state.best_step, eval_seconds=eval_seconds,
                          hparams_changed=rec.results.hparams_changed)
    rec.mlflow_run_id = (tracker.run_id or "") if main else ""
    counts = run.method.parameter_counts()
    rec.efficiency = Efficiency(params_total=counts["params_total"], params_trainable=counts["params_trainable"])
    if not main:
        return rec
    from fsar_bench.profile import profile_method

    profile = profile_method(run.method, way=spec.way, shot=spec.shot, query=spec.query, device=run.device,
                             warmup=1, repeats=3)
    for name in PROFILE_FIELDS:
        setattr(rec.efficiency, name, profile.get(name))
    rec.environment.hardware_key = profile.get("hardware_key", "")
    per_class = per_class_accuracy(df, run.episodes.episodes)
    rec.results.per_class = extremes(per_class)
    write_csv(per_class, run.run_dir / "per_class.csv")
    with atomic_path(run.run_dir / "episodes.parquet") as tmp:
        df.to_parquet(tmp, index=False)
    _atomic_json(rec.to_summary(), run.run_dir / "summary.json")
    _log_per_class(run, df, rec, tracker)
    tracker.log_metrics(rec.mlflow_metrics())
    tracker.log_params(rec.mlflow_efficiency_params())
    tracker.set_tags({"fsar.hardware": rec.environment.hardware_key[:250]})
    tracker.log_artifact(run.run_dir / "episodes.parquet")
    tracker.log_artifact(run.run_dir / "summary.json")
    return rec


def _log_per_class(run: RunPlan, df: pd.DataFrame, rec: RunRecord, tracker: Any) -> None:
    """MLflow inputs (dataset version, episode set digest) and tables the UI previews (per-class
    accuracy, the first episodes), since it cannot preview episodes.parquet."""
    i = rec.identity
    tracker.log_dataset_input(i.dataset, i.data_version or "unknown", str(run.source.root), "test",
                              {"classes": len({c for ep in run.episodes.episodes for c in ep.classes})})
    tracker.log_dataset_input(f"{i.dataset}/{run.episodes.spec.key}", i.episode_digest, str(run.source.root),
                              "episodes", {"episodes": i.episodes, "seed": i.episode_seed})
    tracker.log_artifact(run.run_dir / "per_class.csv")
    tracker.log_table(read_csv(run.run_dir / "per_class.csv"), "per_class.json")
    head = df.head(20)[["episode", "n_query", "n_correct", "accuracy"]]
    tracker.log_table(head.astype({"accuracy": float}), "first_episodes.json")


def _world_params(world: int, train_cfg: TrainConfig) -> dict[str, Any]:
    """What a torchrun run records about its ranks (docs/distributed.md), beside world_size."""
    if world == 1:
        return {}
    return {"dist_backend": dist.backend(),
            "train.episodes_per_update_total": train_cfg.episodes_per_update,
            "train.rank_episodes": f"episode i -> rank i % {world}",
            "train.rank_seeds": f"rank r: episodes i = r, r+{world}, ...; episode i sampled and augmented from "
                                f"(train/{train_cfg.seed}, i), torch seeded from ({train_cfg.seed}, step, i)"}


# -- run folder: ownership, leftovers, faults ---------------------------------------------------

def _lock_run_dir(run_dir: Path) -> Any:
    """Hold `<run_dir>/.lock` for the whole run; a second process on the same run folder is refused."""
    import fcntl

    fh = open(run_dir / ".lock", "w")  # noqa: SIM115  (held until _unlock)
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise FsarError(f"another fsar-bench process is running this run now (run folder {run_dir} is locked)",
                        "wait for it to finish (re-running then reuses its results) or stop it first") from None
    return fh


def _release(run: RunPlan) -> None:
    """Remove the temporary files this process left (a write that failed half-way) and unlock."""
    if run.lock is None:
        return
    for tmp in run.run_dir.rglob(f".*.{os.getpid()}.tmp"):
        tmp.unlink(missing_ok=True)
    run.lock.close()  # closing releases the flock
    run.lock = None


def _clean_run_dir(run_dir: Path) -> None:
    """Remove temporary files a killed process left (`.<name>.<pid>.tmp`) and refuse to resume from a
    damaged results chunk or checkpoint, naming the file. Called while holding the run folder's lock."""
    for tmp in run_dir.rglob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    for chunk in sorted(run_dir.glob("episodes*/chunk-*.parquet")):
        try:
            import pyarrow.parquet as pq

            pq.read_metadata(chunk)
        except Exception:  # noqa: BLE001  (pyarrow raises several types for a truncated file)
            _damaged(chunk, "only its episodes are recomputed")
    for ckpt in ("checkpoint.pt", "final.pt"):
        path = run_dir / ckpt
        if path.exists() and not _zip_ok(path):
            _damaged(path, "training restarts from the previous checkpoint or from the start")


def _zip_ok(path: Path) -> bool:
    """torch.save files are zip archives: a truncated or corrupted one fails the archive check."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return zf.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


def _damaged(path: Path, effect: str) -> None:
    raise FsarError(f"{path} is damaged (truncated or corrupt; an interrupted write or a full disk?)",
                    f"delete it (rm '{path}') and re-run the same command: {effect}")


def _disk_error(exc: OSError, config: BenchConfig) -> Exception:
    """A full disk or quota becomes a one-line FsarError; other OSErrors propagate unchanged."""
    import errno

    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return exc
    where = exc.filename or config.results_dir
    return FsarError(f"no space left on the device while writing {where} ({exc.strerror or 'ENOSPC'})",
                     "free disk space under the results folder, then re-run the same command: it resumes")


def _train(run: RunPlan, config: BenchConfig, tracker, progress: Progress | None) -> TrainState:
    """Train on the training dataset's episodes with the recipe's shot, flip and colour jitter."""
    from fsar_bench.data.transforms import ClipTransform

    method, spec, train_card, train_cfg, recipe = run.method, run.spec, run.train_card, run.train_cfg, run.recipe
    with dist.main_first():
        src = VideoSource.open(train_card, config, _train_root(spec))
    transform = ClipTransform.for_size(method.image_size, method.mean, method.std, flip=recipe.flip.value,
                                       jitter=recipe.jitter.value)  # recipe.flip is False if the card forbids it
    train_way = min(spec.way, len(train_card.split("train").by_class))
    episodes = train_episodes(method, src, train_way, recipe.shot_in_training, train_cfg.train_query,
                              train_cfg.steps, f"train/{train_cfg.seed}", transform, exclude=run.train_missing)
    validate = None
    if train_cfg.val_every and "val" in train_card.split_files:
        n_val = len(train_card.split("val").by_class)
        val_spec = EpisodeSpec(train_card.name, "val", min(5, n_val), spec.shot, 1, train_cfg.val_episodes,
                               train_card.seeds.get("val", "val"))
        val_set = make_set(train_card, val_spec)
        if run.train_missing:  # --allow-missing: validate on the videos present
            val_set = EpisodeSet(val_spec, {c: [v for v in vids if f"{c}/{v}" not in run.train_missing]
                                            for c, vids in train_card.split("val").by_class.items()})

        def validate(m) -> float:
            opts = EvalOptions(device=train_cfg.device, num_workers=train_cfg.num_workers)
            return accuracy_summary(evaluate(m, src, val_set, None, opts))["accuracy"]

    last_logged = {"step": -1}

    def log(metrics: dict[str, float], step: int) -> None:
        if "lr" in metrics:  # logged by the loop when the LR changes (every update in a warm-up)
            tracker.log_metrics(metrics, step)
        elif "val_accuracy" in metrics or step - last_logged["step"] >= 10:
            tracker.log_metrics(metrics, step)
            last_logged["step"] = step

    method.set_dataset(train_card)
    data = TrainData(episodes, validate, run.run_dir, log,
                     (lambda d, t: progress("training episodes", d, t)) if progress else None)
    return method.fit(data, train_cfg)
