"""The run record: everything one benchmark run is, in one typed object.

A `RunRecord` is the only producer of a run's MLflow params, tags and metrics, of its
`summary.json` and of its rows in a leaderboard runs snapshot, and the only reader of all three
back (`from_mlflow`, `from_summary`, `from_snapshot_row`); nothing else formats or parses those
keys. docs/results.md §1 is generated from the field metadata here (`schema_markdown`), and a
test fails when it drifts.

Why dataclasses (not pydantic): the record is plain data built by the runner from already
validated values; stdlib dataclasses add no dependency, keep field metadata (the documentation
of each field) next to the field, and let the record carry numpy per-episode arrays that are not
serialised. Validation of what is read back is done explicitly in the `from_*` readers, where old
formats are upgraded.

Sections: `identity` (what was run: equal identities give equal results; `run_key` is its key),
`environment` (where it ran), `results` and `efficiency`. Issue #17 extends `identity` (code
identity / source digests, replicate seed, group) and `environment` (hardware class); the run
key then becomes the digest of `identity`.

`summary.json` stays one flat JSON object (format 2 = format 1's keys plus new ones and
`"format": 2`), so format-1 readers keep working; a format-1 file (no `format` key) still loads.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import numpy as np

from fsar_bench.episodes import CANONICAL_QUERY, parse_setting, setting_name

FORMAT = 2
PRETRAINED = "pretrained"
RANDOM_INIT = "random-init"
# MLflow metrics of a run, in this order (params_* and the profile come from `efficiency`)
_MLFLOW_METRICS = ("accuracy", "accuracy_std", "ci95", "episodes", "train_seconds", "eval_seconds")
# Decimals MLflow metrics are logged with, so the runs table reads `83.4812`, not `83.48119999999...`
# (the exact values stay in summary.json, episodes.parquet and group.json, which is what the
# leaderboard, `compare` and `plot` compute from). Percentages: 4 decimals, far below the 2 a table
# prints and below the step of a canonical run's accuracy (100 / (10,000 x way) %, way <= 100).
PERCENT_DECIMALS = 4
METRIC_DECIMALS = {**dict.fromkeys(("accuracy", "accuracy_std", "ci95", "episode_ci95", "seed_sd",
                                    "hierarchical_ci_low", "hierarchical_ci_high"), PERCENT_DECIMALS),
                   "seed_share": 4, "seed_share_single_run": 4, "train_seconds": 3, "eval_seconds": 3}
# identity params that name one replicate of a group, not the group (the weights a re-scored replicate
# starts from differ by seed): never logged on a group's or a sweep's parent run
_REPLICATE_PARAMS = ("run_key", "train_seed", "spec", "init_from", "weights_source", "train.seed")


def _f(doc: str, default: Any = MISSING, *, factory: Any = MISSING, key: str | None = "", mlflow: str = "",
       typ: str = "") -> Any:
    """A documented field. `key`: its summary.json key ('' = the field name, None = not written);
    `mlflow`: 'param' or 'metric' (under the summary key) or '' (not logged as such)."""
    meta = {"doc": doc, "key": key, "mlflow": mlflow, "type": typ}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def weights_class(source: str | None, tag: str | None = None) -> str:
    """'random-init' when the weights source (or an MLflow tag) says so, or is unknown (conservative)."""
    if (tag or "").strip() == RANDOM_INIT or (source or "").strip() in (RANDOM_INIT, ""):
        return RANDOM_INIT
    return PRETRAINED


@dataclass
class Identity:
    """What was run. Everything that changes the result; `run_key` names the run folder."""

    method: str = _f("registered method name", "", mlflow="param")
    dataset: str = _f("test dataset (card name)", "", mlflow="param")
    way: int = _f("classes per episode", 5, mlflow="param")
    shot: int = _f("support videos per class", 1, mlflow="param")
    query: int = _f("query videos per class", CANONICAL_QUERY, mlflow="param")
    episodes: int = _f("number of test episodes evaluated (canonical: 10,000)", 0, mlflow="metric")
    matcher: str = _f("matcher name used (the method's default or `--matcher`)", "", mlflow="param")
    preset: str = _f("`full` (paper configuration) or `tiny` (CPU configuration)", "", mlflow="param")
    backbone: str = _f("the method's backbone (`backbone` or `clip_model` hyperparameter)", "", mlflow="param")
    train_dataset: str = _f("training dataset (differs from `dataset` in a cross-dataset run)", "", mlflow="param")
    frames: int | None = _f("frames sampled per video", None, mlflow="param")
    image_size: int | None = _f("input resolution, pixels", None, mlflow="param")
    overrides: dict[str, Any] = _f("method hyperparameters given on top of the preset (bench.yaml, `--set`)",
                                   factory=dict)
    spec: dict[str, Any] = _f("the run's arguments as given, from which `fsar-bench reproduce` rebuilds the run: "
                              "the fields of `fsar_bench.engine.runner.RunSpec` but this machine's data roots "
                              "(`overrides`: `--set` values, the matcher's as `matcher.<key>`; `matcher`, `frames`, "
                              "`train` (`steps`, `lr`, `seed`), `no_train`, `recipe`, `cache`, `episode_seed`, "
                              "`precision`, `num_workers`, ...); not part of the keys (what it decides is recorded "
                              "above); MLflow param `spec` (JSON); {} in records written before it existed",
                              factory=dict, typ="object")
    hparams: dict[str, Any] = _f("all hyperparameters of the method as built; MLflow params `hp.<name>`",
                                 factory=dict, typ="object")
    train_config: dict[str, Any] = _f("the resolved training configuration; MLflow params `train.<name>`",
                                      factory=dict, typ="object")
    recipe: dict[str, str] = _f("the training recipe ([recipes.md](recipes.md)): `recipe.<field>` values and "
                                "`recipe.<field>.source`, `recipe.table`, `recipe.variant`, `recipe.overrides` (the "
                                "fields set by bench.yaml or the command line), `recipe.updates`; MLflow params "
                                "under the same names", factory=dict, typ="object")
    trained: bool = _f("whether the run trained (false: `--no-train`, 0 steps or zero-shot)", False,
                       mlflow="param")
    train_steps: int | None = _f("training episodes configured (0: evaluated without training)", None,
                                 key="train_steps_configured")
    train_seed: str = _f("seed of the training episodes and of the initial weights", "", mlflow="param")
    episode_seed: str = _f("seed of the test episodes (the dataset card's, unless `--episode-seed`)", "",
                           mlflow="param")
    episode_digest: str = _f("SHA-256 (hex) of the test episode set ([episodes.md](episodes.md)); two runs are "
                             "comparable episode by episode iff their digests are equal", "", mlflow="param")
    canonical: bool = _f("the episode set is a locked standard set and all its videos were present", False,
                         mlflow="param")
    canonical_reason: str = _f("why the run is or is not canonical", "")
    data_version: str = _f("the data the run saw: `toy-<generator>/v<N>+sha256:<16 hex>` (toy generator version "
                           "and the digest of the dataset's manifest) or "
                           "`test-videos/sha256:<hex>`, the availability digest (docs/datasets.md, `data check`) "
                           "of the test-split videos present", "", mlflow="param")
    weights_source: str = _f("`random-init`, `file:<sha256 prefix>` or `hub:<tag>` (where the initial weights "
                             "came from)", "", mlflow="param")
    weights: str = _f("weights class: `pretrained` or `random-init` (leaderboards rank them apart)", RANDOM_INIT)
    init_from: str = _f("weights file the run started from (sweeps re-score a trained run's `final.pt`)", "",
                        mlflow="param")
    cache: bool = _f("test videos embedded once and reused across episodes (false: `--no-cache`)", True,
                     mlflow="param")
    evaluated_only: bool = _f("the weights were evaluated, not trained here (`fsar-bench eval`, "
                              "[evaluation.md](evaluation.md)): leaderboards label such rows and never rank them as "
                              "reproduced training runs", False, mlflow="param")
    weights_origin: dict[str, str] = _f("where evaluated weights came from (`fsar-bench eval`): `path`, `sha256` "
                                        "of the file, `format` (`fsar-bench-run`, `state-dict` or `official:<map>`), "
                                        "`source` (the release's repository and class for an official map), "
                                        "`trained_by` (run key or MLflow run id of the run that trained them); "
                                        "MLflow params `weights_origin.<name>`", factory=dict, typ="object")
    precision: str = _f("arithmetic of embedding and scoring: `fp32` (default, for fidelity), `bf16` or `fp16` "
                        "(autocast on CUDA, `--precision`)", "fp32", mlflow="param")
    data_availability: dict[str, Any] = _f("per split with missing videos (`--allow-missing`): `<split>.present`, "
                                           "`<split>.total`, `<split>.digest` (availability digest of the videos "
                                           "present, docs/datasets.md); {} when every video was present",
                                           factory=dict, typ="object")
    sweep: dict[str, str] = _f("the sweep this run is a point of (`fsar-bench sweep`): `kind`, `name` (the run name "
                               "of the sweep's MLflow parent run), `axis` and `value` (the point's x); {} for a plain "
                               "run. Leaderboards list sweep points apart ([leaderboard.md](leaderboard.md)); part of "
                               "the run key, so a plain `fsar-bench run` of the same configuration is another run; "
                               "MLflow params `sweep.<name>`", factory=dict, typ="object")
    code: dict[str, str] = _f("code identity (MLflow params `code.<name>`): `method` and `matcher` are "
                              "`sha256:<16 hex>` digests of the source files of the class's module or package "
                              "(plugins: `<distribution> <version> sha256:<16 hex>`), `fsar_bench` is "
                              "`<version>+sha256:<16 hex>` of fsar-bench's own result-deciding source", factory=dict,
                              typ="object")
    group_key: str = _f("12-hex-digit key of the replicate group: the digest of this identity without the training "
                        "seed (runs of one command with other seeds, or on another hardware class, share it)", "",
                        mlflow="param")
    leakage: dict[str, Any] = _f("class-overlap audit (`fsar_bench.leakage.audit`, docs/statistics.md §5) of a "
                                 "cross-dataset run or of a method card declaring `pretraining`; {} otherwise",
                                 factory=dict, typ="object")
    run_key: str = _f("12-hex-digit key of the run: digest of `group_key`, `train_seed` and the hardware class "
                      "(the run folder's suffix; same key = same folder: resumed, or reused when finished)", "",
                      mlflow="param")

    @property
    def setting(self) -> str:
        return setting_name(self.way, self.shot)

    @property
    def cross_dataset(self) -> bool:
        return bool(self.train_dataset) and self.train_dataset != self.dataset


@dataclass
class Environment:
    """Where the run ran: software versions, hardware, processes."""

    versions: dict[str, str] = _f("software and hardware: `fsar_bench_version`, `git_commit`, `git_dirty`, "
                                  "`python`, `torch`, `cuda`, `device_name` (GPU, else CPU model), `threads`, "
                                  "`platform` (all strings); each also an MLflow param", factory=dict,
                                  key="environment", typ="object")
    world_size: int = _f("number of torchrun processes (1 without torchrun)", 1, mlflow="param")
    distributed: dict[str, Any] = _f("how episodes and seeds were split over the processes (world_size > 1)",
                                     factory=dict, typ="object")
    hardware_key: str = _f("what latency and memory were measured on: `cpu:<model> | <threads> threads | "
                           "torch <version>` (§4); latency is only comparable under the same key", "")
    hardware_class: str = _f("what decides the floating-point result: `<device>/<arch>-<ISA level>/<threads>t/"
                             "torch-<version>`, e.g. `cpu/x86_64-AVX2/1t/torch-2.14.1`; part of the run key, so "
                             "the same command on another class is another replicate of its group", "",
                             mlflow="param")
    deterministic: bool = _f("torch deterministic algorithms were on (`torch.use_deterministic_algorithms`)", False,
                             mlflow="param")
    num_workers: int = _f("data loader worker processes decoding videos for evaluation and training "
                          "(`num_workers` in bench.yaml; default automatic, results do not depend on it)", 0,
                          mlflow="param")

    @property
    def git_commit(self) -> str:
        return self.versions.get("git_commit", "")


@dataclass
class Results:
    """The measured result and how it was obtained."""

    accuracy: float = _f("mean per-episode accuracy, in % (§3.1)", math.nan, mlflow="metric")
    accuracy_std: float = _f("standard deviation of the per-episode accuracies (ddof = 1), in %", math.nan,
                             mlflow="metric")
    ci95: float = _f("half-width of the 95% confidence interval of `accuracy`: 1.96 * `accuracy_std` / "
                     "sqrt(`episodes`), in %", math.nan, mlflow="metric")
    per_episode_file: str = _f("the per-episode results beside this file (§2)", "episodes.parquet")
    train_steps: int = _f("training episodes run (0 without training)", 0)
    train_seconds: float = _f("wall-clock training time, s", 0.0, mlflow="metric")
    train_loss_last20: float = _f("mean training loss over the last 20 steps (NaN, written as `NaN`, without "
                                  "training)", math.nan)
    val_best: float = _f("best validation accuracy in % (-1 without validation)", -1.0)
    val_best_step: int = _f("the training step it was reached at (-1 without validation)", -1)
    eval_seconds: float = _f("wall-clock evaluation time, s (embedding + scoring all episodes)", 0.0,
                             mlflow="metric")
    hparams_changed: dict[str, Any] = _f("hyperparameters the method changed while training, with the value in "
                                         "force (e.g. I2ST `{\"mask_loss\": false}` on data without masks); MLflow "
                                         "has the requested `hp.<k>` and the in-force `hp.<k>.effective`",
                                         factory=dict)
    per_class: dict[str, dict[str, float]] = _f("the weakest and strongest test classes with their accuracy in % "
                                                "(`{\"weakest\": {class: acc}, \"strongest\": {...}}`, 3 each); "
                                                "every class in `per_class.csv` beside this file",
                                                factory=dict)
    # per-episode accuracies (fractions) and episode numbers, when loaded (leaderboard tiers); not in summary.json
    per_episode: np.ndarray | None = field(default=None, repr=False, compare=False, metadata={"key": None})
    episode_ids: np.ndarray | None = field(default=None, repr=False, compare=False, metadata={"key": None})


@dataclass
class Efficiency:
    """What the method costs (`fsar_bench.profile.profile_method` of the trained model, §4)."""

    params_total: float | None = _f("number of parameters of the method (backbone + matcher + heads)", None,
                                    mlflow="param", typ="int")
    params_trainable: float | None = _f("of which `requires_grad`", None, mlflow="param", typ="int")
    flops_per_video: float | None = _f("FLOPs of `embed` on one video (§4)", None, mlflow="param")
    flops_per_episode: float | None = _f("reference per-episode FLOPs: embed supports and queries, then score",
                                         None, mlflow="param")
    flops_matcher: float | None = _f("FLOPs of the matcher on one episode's features", None, mlflow="param")
    gmacs_per_frame: float | None = _f("`flops_per_video / 2 / frames / 1e9`, the unit of most papers' tables",
                                       None, mlflow="param")
    latency_ms_median: float | None = _f("median wall-clock time per episode, ms (on `hardware_key`)", None,
                                         mlflow="param")
    latency_ms_p90: float | None = _f("90th percentile of the time per episode, ms", None, mlflow="param")
    peak_memory_mb: float | None = _f("peak memory during the timed episodes, MB (§4)", None, mlflow="param")


PROFILE_FIELDS = tuple(f.name for f in fields(Efficiency) if f.name.startswith(("flops", "gmacs", "latency", "peak")))
_SECTIONS = ("identity", "environment", "results", "efficiency")


def _key(f: Any) -> str | None:
    key = f.metadata.get("key", "")
    return f.name if key == "" else key


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass
class RunRecord:
    """One run: identity, environment, results, efficiency; plus where MLflow holds it."""

    identity: Identity
    environment: Environment = field(default_factory=Environment)
    results: Results = field(default_factory=Results)
    efficiency: Efficiency = field(default_factory=Efficiency)
    mlflow_run_id: str = ""
    start_time: int = 0  # ms, from MLflow; only to choose the latest rerun (never written)
    end_time: int = 0
    format: int = FORMAT

    # -- summary.json ---------------------------------------------------------------------------

    def to_summary(self) -> dict[str, Any]:
        """The flat `summary.json` object (format 2)."""
        out: dict[str, Any] = {"format": FORMAT}
        for name in _SECTIONS:
            section = getattr(self, name)
            for f in fields(section):
                key = _key(f)
                if key is not None:
                    out[key] = _jsonable(getattr(section, f.name))
        out["setting"] = self.identity.setting
        out["mlflow_run_id"] = self.mlflow_run_id
        return {k: v for k, v in out.items() if not (name_is_profile(k) and v is None)}

    @classmethod
    def from_summary(cls, data: dict[str, Any]) -> RunRecord:
        """A record from a `summary.json` object of format 1 (no `format` key) or 2."""
        fmt = int(data.get("format", 1))
        if fmt > FORMAT:
            from fsar_bench.errors import FsarError

            raise FsarError(f"summary.json has format {fmt}, newer than this fsar-bench reads ({FORMAT})",
                            "upgrade fsar-bench")
        sections = {}
        for name, kind in zip(_SECTIONS, (Identity, Environment, Results, Efficiency)):
            values = {}
            for f in fields(kind):
                key = _key(f)
                if key is not None and key in data:
                    values[f.name] = data[key]
            sections[name] = kind(**values)
        ident = sections["identity"]
        if fmt == 1:  # format 1 had no configured steps, backbone, weights class or seeds
            ident.train_steps = int(data.get("train_steps", 0))
            ident.trained = ident.train_steps > 0
        if "setting" in data and (not ident.way or "way" not in data):
            ident.way, ident.shot = parse_setting(str(data["setting"])) or (ident.way, ident.shot)
        ident.weights = weights_class(ident.weights_source)
        return cls(**sections, mlflow_run_id=str(data.get("mlflow_run_id") or ""))

    # -- MLflow -----------------------------------------------------------------------------------

    def mlflow_params(self) -> dict[str, Any]:
        """The params logged when the run starts (write-once in MLflow)."""
        env = self.environment
        params = self._identity_params()
        params.update({f.name: getattr(env, f.name) for f in fields(env) if f.metadata.get("mlflow") == "param"})
        params["record_format"] = FORMAT
        params.update(env.versions)
        params.update(env.distributed)
        params["world_size"] = env.world_size
        params.update(self.mlflow_efficiency_params())
        return params

    def _identity_params(self) -> dict[str, Any]:
        """The MLflow params that come from `identity` (what was run)."""
        i = self.identity
        params = {f.name: getattr(i, f.name) for f in fields(i) if f.metadata.get("mlflow") == "param"}
        params.update({"cross_dataset": i.cross_dataset, "frames": i.frames, "image_size": i.image_size,
                       "episodes": i.episodes, "init_from": i.init_from or ""})
        params.update({f"hp.{k}": v for k, v in i.hparams.items()})
        params.update({f"code.{k}": v for k, v in i.code.items()})
        params.update({f"sweep.{k}": v for k, v in i.sweep.items()})
        params.update({f"weights_origin.{k}": v for k, v in i.weights_origin.items()})
        params.update({f"data.{k}": v for k, v in i.data_availability.items()})
        params.update({f"train.{k}": v for k, v in i.train_config.items()})
        params.update(i.recipe)  # keys are already `recipe.<name>`
        if i.spec:
            params["spec"] = json.dumps(i.spec, sort_keys=True)
        return params

    def mlflow_tags(self) -> dict[str, str]:
        i = self.identity
        tags = {"fsar.run_key": i.run_key, "fsar.canonical": str(i.canonical).lower(), "fsar.weights": i.weights,
                "fsar.setting": i.setting, "fsar.dataset": i.dataset, "fsar.method": i.method}
        if self.environment.hardware_key:
            tags["fsar.hardware"] = self.environment.hardware_key[:250]
        if i.group_key:
            tags["fsar.group_key"] = i.group_key
        if i.evaluated_only:  # leaderboards label the row "evaluated, not trained here"
            tags["fsar.evaluated_only"] = "true"
        if self.environment.hardware_class:
            tags["fsar.hardware_class"] = self.environment.hardware_class[:250]
        return tags

    def mlflow_metrics(self) -> dict[str, float]:
        """The metrics logged when the run finishes, rounded (`METRIC_DECIMALS`)."""
        out: dict[str, float] = {"accuracy": self.results.accuracy, "accuracy_std": self.results.accuracy_std,
                                 "ci95": self.results.ci95, "episodes": self.identity.episodes,
                                 "train_seconds": self.results.train_seconds,
                                 "eval_seconds": self.results.eval_seconds}
        return rounded_metrics(out)

    def mlflow_efficiency_params(self) -> dict[str, Any]:
        """The efficiency profile as MLflow params: static scalars, which the UI would otherwise draw as
        bar charts next to accuracy (None values are left out)."""
        return {f.name: getattr(self.efficiency, f.name) for f in fields(Efficiency)
                if getattr(self.efficiency, f.name) is not None}

    @classmethod
    def from_mlflow(cls, run: Any) -> RunRecord | None:
        """A record from an `mlflow.entities.Run`; None when it is not an fsar-bench benchmark run."""
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        key = tags.get("fsar.run_key") or params.get("run_key")
        dataset = tags.get("fsar.dataset") or params.get("dataset")
        if not key or not dataset:
            return None
        way, shot = _int(params.get("way"), -1), _int(params.get("shot"), -1)
        if way < 0 or shot < 0:
            parsed = parse_setting(tags.get("fsar.setting") or "")
            if parsed is None:
                return None
            way, shot = parsed
        source = params.get("weights_source", "")
        trained = params.get("trained", "").strip().lower() != "false" and shot != 0
        steps = _num(params.get("train.steps"))
        ident = Identity(
            method=tags.get("fsar.method") or params.get("method", "?"), dataset=dataset, way=way, shot=shot,
            query=_int(params.get("query"), 1), episodes=_int(metrics.get("episodes", params.get("episodes"))),
            matcher=params.get("matcher", ""), preset=params.get("preset", ""), backbone=params.get("backbone", ""),
            train_dataset=params.get("train_dataset", dataset), frames=_int(params.get("frames")) or None,
            image_size=_int(params.get("image_size")) or None,
            hparams={k[3:]: v for k, v in params.items() if k.startswith("hp.")},
            train_config={k[6:]: v for k, v in params.items() if k.startswith("train.")},
            recipe={k: v for k, v in params.items() if k.startswith("recipe.")},
            trained=trained, train_steps=(int(steps) if steps is not None else None) if trained else 0,
            train_seed=params.get("train_seed", ""), episode_seed=params.get("episode_seed", ""),
            episode_digest=params.get("episode_digest", ""),
            canonical=(tags.get("fsar.canonical") or params.get("canonical", "")).strip().lower() == "true",
            data_version=params.get("data_version", ""), weights_source=source,
            weights=weights_class(source, tags.get("fsar.weights")), init_from=params.get("init_from", ""),
            cache=params.get("cache", "True") != "False", run_key=key,
            evaluated_only=params.get("evaluated_only", "").strip().lower() == "true",
            weights_origin={k[15:]: v for k, v in params.items() if k.startswith("weights_origin.")},
            precision=params.get("precision", "fp32"),
            data_availability={k[5:]: v for k, v in params.items() if k.startswith("data.")},
            code={k[5:]: v for k, v in params.items() if k.startswith("code.")},
            sweep={k[6:]: v for k, v in params.items() if k.startswith("sweep.")},
            group_key=tags.get("fsar.group_key") or params.get("group_key", ""))
        results = Results(**{k: _num(metrics.get(k)) or math.nan for k in ("accuracy", "accuracy_std", "ci95")},
                          train_seconds=_num(metrics.get("train_seconds")) or 0.0,
                          eval_seconds=_num(metrics.get("eval_seconds")) or 0.0)
        eff = Efficiency(**{f.name: _num(params.get(f.name, metrics.get(f.name))) for f in fields(Efficiency)})
        env = Environment(world_size=_int(params.get("world_size"), 1), hardware_key=tags.get("fsar.hardware", ""),
                          hardware_class=params.get("hardware_class", ""),
                          deterministic=params.get("deterministic", "").strip().lower() == "true",
                          num_workers=_int(params.get("num_workers"), 0),
                          versions={k: params[k] for k in ("fsar_bench_version", "git_commit", "git_dirty", "python",
                                                           "torch", "cuda", "device_name", "threads", "platform")
                                    if k in params})
        ident.spec = _json_object(params.get("spec"))
        ident.overrides = dict(ident.spec.get("overrides") or {})
        return cls(ident, env, results, eff, mlflow_run_id=run.info.run_id,
                   start_time=int(run.info.start_time or 0), end_time=int(run.info.end_time or 0))

    # -- leaderboard snapshot rows (format fsar-leaderboard-runs/1) ------------------------------

    def to_snapshot_row(self) -> dict[str, Any]:
        """The record's entry in a leaderboard runs snapshot (without its per-episode results)."""
        i, r, e = self.identity, self.results, self.efficiency
        row = {k: getattr(i, k) for k in _SNAPSHOT_IDENTITY}
        if not i.sweep:  # rows of plain runs stay as before sweeps were recorded
            row.pop("sweep")
        row.update(run_id=self.mlflow_run_id, setting=i.setting, digest=i.episode_digest,
                   hardware_class=self.environment.hardware_class)
        row.update({k: (v if math.isfinite(v) else None) for k, v in
                    (("accuracy", r.accuracy), ("ci95", r.ci95), ("accuracy_std", r.accuracy_std))})
        row.update({k: getattr(e, k) for k in _SNAPSHOT_EFFICIENCY})
        if i.spec:  # `reproduce` rebuilds the row's command from it (rows of older records have none)
            row["spec"] = i.spec
        if i.code:  # which code produced the number (rows of older snapshots have none)
            row["code"] = dict(i.code)
        return row

    @classmethod
    def from_snapshot_row(cls, row: dict[str, Any]) -> RunRecord:
        """A record from a snapshot entry; KeyError/TypeError when one is incomplete."""
        setting = parse_setting(str(row["setting"]))
        way, shot = (row.get("way"), row.get("shot")) if setting is None else setting
        ident = Identity(**{k: row[k] for k in _SNAPSHOT_IDENTITY if k in row},
                         episode_digest=row.get("digest", ""))
        ident.way, ident.shot = int(row.get("way", way)), int(row.get("shot", shot))
        ident.spec = dict(row.get("spec") or {})
        ident.code = dict(row.get("code") or {})
        ident.overrides = dict(ident.spec.get("overrides") or {})
        nan = (lambda v: math.nan if v is None else float(v))
        results = Results(accuracy=nan(row.get("accuracy")), ci95=nan(row.get("ci95")),
                          accuracy_std=nan(row.get("accuracy_std")))
        eff = Efficiency(**{k: row.get(k) for k in _SNAPSHOT_EFFICIENCY})
        env = Environment(hardware_class=str(row.get("hardware_class") or ""))
        return cls(ident, env, results, eff, mlflow_run_id=str(row["run_id"]))


_SNAPSHOT_IDENTITY = ("run_key", "method", "dataset", "way", "shot", "query", "episodes", "matcher", "preset",
                      "backbone", "train_dataset", "frames", "train_steps", "episode_seed", "canonical",
                      "data_version", "weights", "weights_source", "group_key", "train_seed", "evaluated_only",
                      "precision", "init_from", "sweep")
_SNAPSHOT_EFFICIENCY = ("params_total", "params_trainable", "flops_per_video", "flops_per_episode")
SNAPSHOT_KEYS = tuple(sorted({*_SNAPSHOT_IDENTITY, *_SNAPSHOT_EFFICIENCY, "run_id", "setting", "digest",
                              "hardware_class", "accuracy", "ci95", "accuracy_std", "spec", "code"}))


def rounded_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """`metrics` as MLflow logs them: each rounded to its `METRIC_DECIMALS` (others, e.g. counts, as
    given); NaN and infinities pass unchanged."""
    out = {}
    for k, v in metrics.items():
        v = float(v)
        out[k] = round(v, METRIC_DECIMALS[k]) if k in METRIC_DECIMALS and math.isfinite(v) else v
    return out


def group_mlflow_params(records: list[RunRecord]) -> dict[str, Any]:
    """The params of the MLflow parent run of several runs (a seed group's replicates, a sweep's
    points): the identity params all of them share, without those that name one replicate (run key,
    seed, start weights; a parent with a `run_key` would be read back as a run). The runs table then
    fills the same columns (matcher, way, shot, preset, frames, ...) for the parent as for its runs."""
    if not records:
        return {}
    first, *rest = [r._identity_params() for r in records]
    return {k: v for k, v in first.items() if k not in _REPLICATE_PARAMS and not k.startswith("weights_origin.")
            and all(k in o and str(o[k]) == str(v) for o in rest)}


def name_is_profile(key: str) -> bool:
    return key in PROFILE_FIELDS


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def _int(value: Any, default: int = 0) -> int:
    out = _num(value)
    return int(out) if out is not None else default


def _json_object(text: str | None) -> dict[str, Any]:
    """A JSON object MLflow holds as a param string; {} when absent or not an object."""
    try:
        out = json.loads(text) if text else {}
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


# -- documentation ------------------------------------------------------------------------------

DOC_BEGIN = "<!-- BEGIN summary.json fields: generated by `python -m fsar_bench.results.record docs/results.md` -->"
DOC_END = "<!-- END summary.json fields -->"
_TITLES = {"identity": "What was run (`identity`)", "environment": "Where it ran (`environment`)",
           "results": "The result and how it was obtained (`results`)",
           "efficiency": "What it costs (`efficiency`: the profile of the trained model, §4)"}


def _type(f: Any) -> str:
    if f.metadata.get("type"):
        return f.metadata["type"]
    text = str(f.type).replace(" | None", "").replace("dict[str, Any]", "object").replace("dict[str, str]", "object")
    return text + (" or null" if "None" in str(f.type) else "")


def schema_markdown() -> str:
    """The field tables of docs/results.md §1, from the field metadata above."""
    lines = [DOC_BEGIN, "", "| field | type | meaning |", "|---|---|---|",
             f"| `format` | int | {FORMAT} (files without it are format 1, still read) |",
             "| `setting` | str | `\"<way>w<shot>s\"`, e.g. `5w1s` |",
             "| `mlflow_run_id` | str | the MLflow run holding the same record (params, metrics, these files as "
             "artifacts) |", "", _rounding_note(), ""]
    for name, kind in zip(_SECTIONS, (Identity, Environment, Results, Efficiency)):
        lines += [f"### {_TITLES[name]}", "", "| field | type | meaning |", "|---|---|---|"]
        for f in fields(kind):
            key = _key(f)
            if key is None:
                continue
            lines.append(f"| `{key}` | {_type(f)} | {f.metadata['doc']} |")
        lines.append("")
    lines.append(DOC_END)
    return "\n".join(lines)


def _rounding_note() -> str:
    """The sentence of docs/results.md §1 on how MLflow metrics are rounded (from `METRIC_DECIMALS`)."""
    by: dict[int, list[str]] = {}
    for name in _MLFLOW_METRICS:
        if name in METRIC_DECIMALS:
            by.setdefault(METRIC_DECIMALS[name], []).append(f"`{name}`")
    parts = "; ".join(f"{', '.join(names)} to {d} decimals" for d, names in sorted(by.items(), reverse=True))
    return (f"The MLflow metrics of a run are these values rounded for display ({parts}; a seed group's parent "
            f"run likewise, percentages to {PERCENT_DECIMALS}): this file, `episodes.parquet` and `group.json` keep "
            "the exact values, which the leaderboard's ranks and tiers, `compare` and `plot` read (a leaderboard "
            "row shown from the metric alone is off by at most half a unit of the last decimal: 0.00005 pp).")


def check_docs(text: str) -> bool:
    """Whether a docs/results.md text holds the current generated field tables."""
    return schema_markdown() in text


def update_docs(text: str) -> str:
    """`text` with its generated block replaced by the current one."""
    start, end = text.index(DOC_BEGIN), text.index(DOC_END) + len(DOC_END)
    return text[:start] + schema_markdown() + text[end:]


if __name__ == "__main__":  # python -m fsar_bench.results.record docs/results.md
    import sys
    from pathlib import Path

    from fsar_bench.io import atomic_write

    target = Path(sys.argv[1])
    atomic_write(target, update_docs(target.read_text(encoding="utf-8")))
