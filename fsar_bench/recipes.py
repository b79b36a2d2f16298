"""Training recipes resolved per (method, dataset, shot), every value with its source.

A method ships its recipe table as package data beside its class's module: `<name>.recipes.yaml`
(packages that host several methods) or `recipes.yaml`. The core finds it through the class, never
by method name; a method without a table trains on its `train_presets` ("plugin defaults").

Layers, later ones win (each value keeps the source of the layer that set it):

    harness defaults (TrainConfig, the engine's augmentation, the dataset card's flip)
    <- method presets (frames, image_size) and train_presets[preset]      "plugin defaults: ..."
    <- table `defaults` <- table `datasets.<dataset>` <- `datasets.<dataset>.shots.<shot>`
    <- table `variants.<variant>` (a named alternative, e.g. DMGAL's released SGD recipe)
    <- bench.yaml training overrides <- command line (--steps, --lr, --set)  "override: <where>"

The table applies to the presets it lists (`presets`: the paper's configurations); other presets
(`tiny` on the toy datasets) resolve exactly as before: TrainConfig defaults + train_presets.

Table entries are `{value: ..., source: "..."}` with a source starting `paper:` (section/table),
`official config:` (repository + file) or `ours:` (why). docs/recipes.md is generated from the
tables by `render_recipes_doc` (tests/test_recipes.py checks the committed file is current).
"""

from __future__ import annotations

import importlib
import importlib.resources
import inspect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml

from fsar_bench.engine.schedule import OPTIMIZERS, ScheduleSpec, from_iterations
from fsar_bench.errors import FsarError, unknown

T = TypeVar("T")

SOURCE_KINDS = ("paper:", "official config:", "ours:")
# The engine's training colour-jitter strength before recipes existed (engine/runner.py): toy runs keep it.
HARNESS_JITTER = 0.2


@dataclass(frozen=True)
class Sourced(Generic[T]):
    """A recipe value and where it comes from."""

    value: T
    source: str


def _coerce_int(key: str, v: Any) -> int:
    if isinstance(v, bool) or not (isinstance(v, int) or (isinstance(v, float) and v.is_integer())):
        raise FsarError(f"recipe value {key}={v!r} is not a whole number", f"write e.g. {key}=1000")
    return int(v)


def _coerce_float(key: str, v: Any) -> float:
    try:
        if isinstance(v, bool):
            raise ValueError
        out = float(v)
    except (TypeError, ValueError):
        raise FsarError(f"recipe value {key}={v!r} is not a number", f"write e.g. {key}=1e-4") from None
    if not math.isfinite(out) or out < 0:
        raise FsarError(f"recipe value {key}={v!r} must be a finite number >= 0", f"write e.g. {key}=1e-4")
    return out


def _coerce_bool(key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise FsarError(f"recipe value {key}={v!r} is not true/false", f"write {key}=true or {key}=false")
    return v


def _coerce_optimizer(key: str, v: Any) -> str:
    if v not in OPTIMIZERS:
        raise unknown("optimizer", str(v), OPTIMIZERS)
    return str(v)


def _coerce_shot(key: str, v: Any) -> int | None:
    return None if v is None else _coerce_int(key, v)


def _coerce_schedule(key: str, v: Any) -> dict[str, Any]:
    """Kept raw until the end (a cosine needs the final number of updates): a kind name or a mapping."""
    if isinstance(v, ScheduleSpec):
        return v.as_dict()
    if isinstance(v, str):
        v = {"kind": v}
    if not isinstance(v, Mapping) or "kind" not in v:
        raise FsarError(f"recipe value {key}={v!r} is not an LR schedule",
                        "write a kind (constant, cosine) or a mapping with `kind` (docs/recipes.md)")
    return dict(v)


# name -> (what it is, coercion of a yaml / command-line value)
FIELDS: dict[str, tuple[str, Any]] = {
    "steps": ("training episodes (all processes)", _coerce_int),
    "episodes_per_update": ("episodes per optimiser update", _coerce_int),
    "optimizer": ("optimiser", _coerce_optimizer),
    "lr": ("base learning rate", _coerce_float),
    "schedule": ("LR schedule (in updates)", _coerce_schedule),
    "weight_decay": ("weight decay", _coerce_float),
    "frames": ("frames per video", _coerce_int),
    "image_size": ("image size (px)", _coerce_int),
    "flip": ("horizontal flip in training", _coerce_bool),
    "jitter": ("colour jitter strength in training", _coerce_float),
    "train_query": ("queries per class in training", _coerce_int),
    "train_shot": ("shots in training (null: the test shot)", _coerce_shot),
    "val_every": ("validate every N episodes", _coerce_int),
    "val_episodes": ("validation episodes", _coerce_int),
    "checkpoint_every": ("checkpoint every N episodes", _coerce_int),
}
RECIPE_FIELDS = tuple(FIELDS)
TRAIN_CONFIG_FIELDS = ("steps", "lr", "weight_decay", "episodes_per_update", "val_every", "val_episodes",
                       "train_query", "checkpoint_every")
METHOD_FIELDS = ("frames", "image_size")  # method hyperparameters a recipe may set


@dataclass(frozen=True)
class ResolvedRecipe:
    """The training recipe of one run; each field a `Sourced` (value, source) pair."""

    method: str
    dataset: str
    shot: int
    preset: str
    steps: Sourced[int]
    episodes_per_update: Sourced[int]
    optimizer: Sourced[str]
    lr: Sourced[float]
    schedule: Sourced[ScheduleSpec]
    weight_decay: Sourced[float]
    frames: Sourced[int]
    image_size: Sourced[int]
    flip: Sourced[bool]
    jitter: Sourced[float]
    train_query: Sourced[int]
    train_shot: Sourced[int | None]
    val_every: Sourced[int]
    val_episodes: Sourced[int]
    checkpoint_every: Sourced[int]
    table: str = ""  # the recipe file used ('' = plugin defaults)
    variant: str = ""
    overrides: frozenset[str] = field(default_factory=frozenset)

    def get(self, name: str) -> Sourced[Any]:
        return getattr(self, name)

    @property
    def updates(self) -> int:
        """Optimiser updates of the run: ceil(steps / episodes_per_update)."""
        return -(-self.steps.value // max(1, self.episodes_per_update.value))

    @property
    def shot_in_training(self) -> int:
        return self.shot if self.train_shot.value is None else self.train_shot.value

    def train_config(self) -> dict[str, Any]:
        """The TrainConfig keyword values (seed, device and num_workers stay the runner's), with the
        optimiser and the LR schedule (as plain values: TrainConfig is recorded as JSON)."""
        return {**{k: self.get(k).value for k in TRAIN_CONFIG_FIELDS}, "optimizer": self.optimizer.value,
                "schedule": self.schedule.value.as_dict()}

    def method_overrides(self) -> dict[str, Any]:
        """frames / image_size for `create_method` (equal to the preset's unless the recipe sets them)."""
        return {k: self.get(k).value for k in METHOD_FIELDS}

    def as_params(self) -> dict[str, str]:
        """Flat strings for MLflow params / the run record: recipe.<field> and recipe.<field>.source."""
        out = {"recipe.table": self.table or "plugin defaults", "recipe.variant": self.variant or "-",
               "recipe.overrides": ",".join(sorted(self.overrides)) or "-", "recipe.updates": str(self.updates)}
        for name in RECIPE_FIELDS:
            item = self.get(name)
            out[f"recipe.{name}"] = _show(item.value)
            out[f"recipe.{name}.source"] = item.source
        return out

    def rows(self) -> list[tuple[str, str, str]]:
        """(field, value, source) rows for `--dry-run` and docs/recipes.md."""
        return [(name, _show(self.get(name).value), self.get(name).source) for name in RECIPE_FIELDS]

    def format(self) -> str:
        """A plain-text table of `rows()` with a header line (what `--dry-run` prints)."""
        head = (f"recipe of {self.method} on {self.dataset} {self.shot}-shot (preset {self.preset}; "
                f"{self.table or 'plugin defaults'}{'; variant ' + self.variant if self.variant else ''}; "
                f"{self.updates} updates)")
        rows = self.rows()
        w0 = max(len(r[0]) for r in rows)
        w1 = min(40, max(len(r[1]) for r in rows))
        return "\n".join([head, *(f"  {a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows)])


def _show(value: Any) -> str:
    if isinstance(value, ScheduleSpec):
        return value.describe()
    if value is None:
        return "test shot"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).lower() if isinstance(value, bool) else str(value)


# -- tables --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecipeTable:
    """A method's recipe table (one yaml file), validated."""

    path: str
    method: str
    presets: tuple[str, ...]
    defaults: dict[str, Sourced[Any]]
    datasets: dict[str, dict[str, Sourced[Any]]]
    shots: dict[str, dict[int, dict[str, Sourced[Any]]]]
    variants: dict[str, dict[str, Sourced[Any]]]
    notes: str = ""


def _entries(where: str, data: Any) -> dict[str, Sourced[Any]]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise FsarError(f"{where} is not a mapping of recipe fields", "write field: {value: ..., source: ...}")
    out = {}
    for key, entry in data.items():
        if key not in FIELDS:
            raise unknown("recipe field", str(key), FIELDS, where=f"in {where}")
        if not isinstance(entry, Mapping) or set(entry) != {"value", "source"}:
            raise FsarError(f"{where}.{key} must be {{value: ..., source: ...}}", "give both the value and its source")
        source = str(entry["source"]).strip()
        if not source.startswith(SOURCE_KINDS):
            raise FsarError(f"{where}.{key} has source {source[:40]!r}",
                            f"start the source with one of {', '.join(SOURCE_KINDS)}")
        out[key] = Sourced(FIELDS[key][1](key, entry["value"]), source)
    return out


def load_table(text: str, where: str, known_datasets: Iterable[str] | None = None) -> RecipeTable:
    """Parse and validate a recipe table (yaml text); `where` names the file in errors."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FsarError(f"recipe table {where} is not valid YAML ({str(exc).splitlines()[0]})",
                        "fix the file") from None
    if not isinstance(data, Mapping):
        raise FsarError(f"recipe table {where} is not a mapping", "see docs/recipes.md for the format")
    allowed = {"method", "presets", "defaults", "datasets", "variants", "notes"}
    extra = sorted(set(data) - allowed)
    if extra:
        raise unknown("key", str(extra[0]), allowed, where=f"in recipe table {where}")
    known = set(known_datasets) if known_datasets is not None else None
    datasets, shots = {}, {}
    for ds, block in (data.get("datasets") or {}).items():
        if known is not None and ds not in known:
            raise unknown("dataset", str(ds), known, where=f"in recipe table {where}")
        block = dict(block or {})
        shot_blocks = block.pop("shots", None) or {}
        datasets[ds] = _entries(f"{where}: datasets.{ds}", block)
        shots[ds] = {int(k): _entries(f"{where}: datasets.{ds}.shots.{k}", v) for k, v in shot_blocks.items()}
    variants = {str(k): _entries(f"{where}: variants.{k}", v) for k, v in (data.get("variants") or {}).items()}
    return RecipeTable(where, str(data.get("method", "")), tuple(data.get("presets") or ("full",)),
                       _entries(f"{where}: defaults", data.get("defaults")), datasets, shots, variants,
                       str(data.get("notes", "")).strip())


def _package_of(cls: type) -> str:
    module = importlib.import_module(cls.__module__)
    return cls.__module__ if hasattr(module, "__path__") else cls.__module__.rpartition(".")[0]


def table_resource(cls: type) -> Any | None:
    """The recipe file of a method class (a Traversable) or None: `cls.recipe_file` if set, else
    `<name>.recipes.yaml`, else `recipes.yaml`, beside the class's module."""
    package = _package_of(cls)
    try:  # a top-level module (no package) keeps its table in its own folder
        here = importlib.resources.files(package) if package else Path(inspect.getfile(cls)).parent
    except (ModuleNotFoundError, TypeError, OSError):
        return None
    names = [getattr(cls, "recipe_file", None), f"{getattr(cls, 'name', '')}.recipes.yaml", "recipes.yaml"]
    for name in names:
        if name and not name.startswith(".") and (here / name).is_file():
            return here / name
    return None


@lru_cache(maxsize=None)
def _load_cached(where: str, text: str, known: tuple[str, ...]) -> RecipeTable:
    return load_table(text, where, known)


def _known_datasets() -> tuple[str, ...]:
    from fsar_bench.data.cards import list_cards

    return tuple(list_cards())


def method_table(cls: type) -> RecipeTable | None:
    """The validated recipe table of a method class, None when it ships none."""
    res = table_resource(cls)
    if res is None:
        return None
    where = f"{_package_of(cls) or Path(str(res)).parent.name}/{res.name}"
    table = _load_cached(where, res.read_text(encoding="utf-8"), _known_datasets())
    name = getattr(cls, "name", "")
    if table.method and name and table.method != name:
        raise FsarError(f"recipe table {where} is for method {table.method!r}, not {name!r}",
                        f"name the file {name}.recipes.yaml, or set `method: {name}` in it")
    return table


# -- resolution ------------------------------------------------------------------------------------


def harness_train_defaults() -> dict[str, Any]:
    """The TrainConfig defaults of the recipe's TrainConfig fields (what a preset leaves unset)."""
    from fsar_bench.engine.train import TrainConfig

    return {f.name: f.default for f in fields(TrainConfig) if f.name in TRAIN_CONFIG_FIELDS}


def _preset_hparams(cls: type, preset: str) -> dict[str, Sourced[Any]]:
    params = inspect.signature(cls.__init__).parameters
    out = {}
    for key in METHOD_FIELDS:
        if key in cls.presets.get(preset, {}):
            out[key] = Sourced(cls.presets[preset][key], f"plugin defaults: presets['{preset}']")
        elif key in params and params[key].default is not inspect.Parameter.empty:
            out[key] = Sourced(params[key].default, f"plugin defaults: {cls.__name__}.__init__ default")
    return out


def _layer(values: Mapping[str, Any], source: str) -> dict[str, Sourced[Any]]:
    return {k: Sourced(FIELDS[k][1](k, v), source) for k, v in values.items() if k in FIELDS}


def _finish_schedule(raw: Sourced[Any], steps: int, per_update: int) -> Sourced[ScheduleSpec]:
    data = dict(raw.value)
    updates = -(-steps // max(1, per_update))
    if data.get("kind") == "iterations":  # a SOLVER block of the alibaba / D2ST code, converted
        data.pop("kind")
        try:
            spec = from_iterations(**data)
        except TypeError as exc:
            raise FsarError(f"iterations schedule: {exc}", "fields: steps_iter, epochs, lrs, iters_per_update, "
                            "warmup_start_factor, warmup_epochs, epoch_rule") from None
        return Sourced(spec, raw.source)
    if data.get("kind") == "cosine" and not data.get("total_updates"):
        data["total_updates"] = updates
    return Sourced(ScheduleSpec.from_mapping(data), raw.source)


def _variant(cls: type, used: RecipeTable | None, variant: str, preset: str) -> dict[str, Sourced[Any]]:
    """The entries of a named variant (`--recipe NAME`); a one-line error naming the known ones."""
    name = getattr(cls, "name", "") or cls.__name__
    if used is None:
        table = method_table(cls)
        why = (f"its recipe table applies to the presets {', '.join(table.presets)}, not {preset!r}"
               if table is not None else "it ships no recipe table")
        raise FsarError(f"method {name!r} has no recipe variant {variant!r} ({why})",
                        "drop --recipe" + (f" or use --preset {table.presets[0]}" if table is not None else ""))
    if variant not in used.variants:
        if not used.variants:
            raise FsarError(f"method {name!r} has no recipe variants (asked for {variant!r})", "drop --recipe")
        raise unknown("recipe variant", variant, used.variants, where=f"of method {name!r}")
    return used.variants[variant]


def check_variant(cls: type, variant: str, preset: str = "full") -> None:
    """`--recipe NAME` checked before any work (and before torchrun starts N copies of the command)."""
    table = method_table(cls)
    _variant(cls, table if table is not None and preset in table.presets else None, variant, preset)


def resolve_recipe(cls: type, dataset: str, shot: int, preset: str = "full", *,
                   overrides: Sequence[tuple[str, Mapping[str, Any]]] = (), variant: str | None = None,
                   flip_allowed: bool | None = None) -> ResolvedRecipe:
    """The recipe of `cls` (a Method class) on `dataset` at `shot`.

    overrides: (where, values) layers applied last, in order, e.g. [("bench.yaml training", cfg["train"]),
    ("--steps", {"steps": 500}), ("--set", sets)]; keys that are not recipe fields are ignored (the
    runner keeps seed, device, num_workers and method hyperparameters). variant: a named alternative
    of the table (`variants`). flip_allowed: the dataset card's flip (read from the card when None).
    """
    from fsar_bench.data.cards import get_card

    card = get_card(dataset)  # one-line FsarError for an unknown dataset
    name = getattr(cls, "name", "") or cls.__name__
    if preset not in cls.presets:
        raise unknown("preset", preset, cls.presets, where=f"of method {name!r}")
    flip = card.flip if flip_allowed is None else bool(flip_allowed)
    values: dict[str, Sourced[Any]] = {k: Sourced(v, "harness default: engine TrainConfig")
                                       for k, v in harness_train_defaults().items()}
    values.update(optimizer=Sourced("adam", "harness default: Method.configure_optimizer (Adam)"),
                  schedule=Sourced({"kind": "constant"}, "harness default: constant LR"),
                  jitter=Sourced(HARNESS_JITTER, "harness default: engine training transform"),
                  flip=Sourced(flip, f"dataset card {card.name}: flip {'allowed' if card.flip else 'forbidden'}"),
                  train_shot=Sourced(None, "harness default: train with the test shot"))
    values.update(_preset_hparams(cls, preset))
    values.update(_layer(cls.train_presets.get(preset, {}), f"plugin defaults: train_presets['{preset}']"))
    table = method_table(cls)
    used = table if table is not None and preset in table.presets else None
    if used is not None:
        values.update(used.defaults)
        values.update(used.datasets.get(card.name, {}))
        values.update(used.shots.get(card.name, {}).get(int(shot), {}))
    if variant:
        values.update(_variant(cls, used, variant, preset))
    touched: set[str] = set()
    for where, layer in overrides:
        new = _layer(layer or {}, f"override: {where}")
        touched.update(new)
        values.update(new)
    if values["flip"].value and not card.flip:  # a temporal dataset's card forbids flips, whoever asks
        values["flip"] = Sourced(False, f"dataset card {card.name}: flip forbidden (overrules "
                                        f"'{values['flip'].source}')")
    steps, per_update = values["steps"].value, values["episodes_per_update"].value
    values["schedule"] = _finish_schedule(values["schedule"], steps, per_update)
    return ResolvedRecipe(method=name, dataset=card.name, shot=int(shot), preset=preset,
                          table=used.path if used is not None else "", variant=variant or "",
                          overrides=frozenset(touched), **{k: values[k] for k in RECIPE_FIELDS})


def with_overrides(recipe: ResolvedRecipe, values: Mapping[str, Any], where: str) -> ResolvedRecipe:
    """`recipe` with `values` laid on top (source 'override: <where>'); the schedule is kept as resolved."""
    new = _layer(values, f"override: {where}")
    if "schedule" in new:
        steps = new.get("steps", recipe.steps).value
        per = new.get("episodes_per_update", recipe.episodes_per_update).value
        new["schedule"] = _finish_schedule(new["schedule"], steps, per)
    return replace(recipe, overrides=recipe.overrides | frozenset(new), **new)


def override_layers(bench_train: Mapping[str, Any], cli_train: Mapping[str, Any],
                    sets: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The standard override layers of a run, in order: bench.yaml `train`, each training flag of the
    command line (`--steps`, `--lr`: cli_train {'steps': ..., 'lr': ...}), then `--set` (only its
    recipe fields; the rest are method hyperparameters, see `method_sets`)."""
    layers = [("bench.yaml train", {k: v for k, v in bench_train.items() if k in FIELDS})]
    layers += [(f"--{k.replace('_', '-')}", {k: v}) for k, v in cli_train.items() if k in FIELDS and v is not None]
    layers.append(("--set", {k: v for k, v in sets.items() if k in FIELDS}))
    return [(where, values) for where, values in layers if values]


def method_sets(sets: Mapping[str, Any]) -> dict[str, Any]:
    """The `--set` values that are method hyperparameters (not recipe-only fields such as lr or schedule);
    frames / image_size are both and stay (the recipe's `method_overrides()` gives the resolved ones)."""
    return {k: v for k, v in sets.items() if k not in FIELDS or k in METHOD_FIELDS}


# -- docs/recipes.md -----------------------------------------------------------------------------------

DOC_SHOTS = (1, 5)


def _doc_method(name: str, cls: type) -> list[str]:
    table = method_table(cls)
    lines = [f"## {name}", ""]
    if table is None:
        lines += ["No recipe table: runs use the method's `train_presets` (\"plugin defaults\").", ""]
        return lines
    lines += [f"Table: `{table.path}`; applies to the presets {', '.join(f'`{p}`' for p in table.presets)} "
              f"(other presets, e.g. `tiny` on the toy datasets, use `train_presets`).", ""]
    if table.notes:
        lines += [table.notes, ""]
    for ds in sorted(table.datasets):
        recipes = [resolve_recipe(cls, ds, s, table.presets[0]) for s in DOC_SHOTS]
        differs = any(r.rows() != recipes[0].rows() for r in recipes[1:])
        lines += [f"### {name} on {ds} ({recipes[0].updates} updates at 1-shot)", ""]
        if differs:
            lines += ["| field | 1-shot | 5-shot | source (1-shot; 5-shot if different) |", "|---|---|---|---|"]
            for (f, v1, s1), (_, v5, s5) in zip(recipes[0].rows(), recipes[1].rows()):
                lines.append(f"| {f} | {_cell(v1)} | {_cell(v5)} | {_cell(s1 if s1 == s5 else s1 + '; ' + s5)} |")
        else:
            lines += ["| field | value (1- and 5-shot) | source |", "|---|---|---|"]
            lines += [f"| {f} | {_cell(v)} | {_cell(s)} |" for f, v, s in recipes[0].rows()]
        lines.append("")
    for var, entries in sorted(table.variants.items()):
        lines += [f"### {name}: variant `{var}` (laid over the dataset's recipe)", "", "| field | value | source |",
                  "|---|---|---|"]
        lines += [f"| {f} | {_cell(_show(e.value) if f != 'schedule' else _sched(e.value))} | {_cell(e.source)} |"
                  for f, e in entries.items()]
        lines.append("")
    return lines


def _sched(raw: Any) -> str:
    return _finish_schedule(Sourced(raw, ""), 1, 1).value.describe() if raw.get("kind") != "cosine" else "cosine"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_recipes_doc(methods: Mapping[str, type]) -> str:
    """docs/recipes.md: the recipe of every given method (name -> class) per dataset, with sources."""
    head = [
        "# Training recipes",
        "",
        "<!-- Generated by fsar_bench.recipes.render_recipes_doc from the methods' recipes.yaml files; "
        "do not edit by hand (tests/test_recipes.py checks it is current). -->",
        "",
        "A run's recipe is resolved per (method, dataset, shot): harness defaults <- the method's presets "
        "and `train_presets` <- its recipe table (defaults <- dataset <- dataset and shot) <- a named variant "
        "<- bench.yaml `train` <- the command line (`--steps`, `--lr`, `--set`). Every value carries its "
        "source: `paper:` (section/table), `official config:` (repository + file), `ours:` (why), "
        "`plugin defaults`, `harness default`, `dataset card`, or `override: <where>`.",
        "",
        "`fsar-bench run METHOD --dataset DATASET --shot K --dry-run` prints the recipe a run would use, every "
        "value with its source (overrides marked `override: <where>`), with the method's hyperparameters and "
        "weights (the paper's weights tag and `weights_status`), and exits without reading videos or writing "
        "anything; `--recipe NAME` picks a named variant (e.g. `dmgal_ft --recipe release`). A run records its "
        "recipe in summary.json (`recipe`) and as MLflow params `recipe.<field>` / `recipe.<field>.source`; the "
        "training loop logs the LR (metric `lr`) whenever it changes, and resumes mid-schedule exactly "
        "(the scheduler's update count is in `checkpoint.pt`).",
        "",
        "Steps count training episodes over all processes; the LR schedule counts optimiser updates "
        "(steps / episodes per update; episodes per update is the total over all processes, so `--nproc W` "
        "splits it W ways and the milestones do not move, docs/distributed.md). The public alibaba code (HyRSM, MoLo, CLIP-FSAR) computes its "
        "schedule epoch as floor(i/S) + i/S instead of i/S (`runs/train_net_few_shot.py`), so its LR steps "
        "come about twice as early as its configs say; recipes taken from that code follow what it "
        "actually does (epoch rule `released`: the published numbers came from it), the D2ST code "
        "fixed the rule (`intended`). `fsar_bench.engine.schedule.from_iterations` does the conversion.",
        "",
        "Flips: a dataset card that forbids flips (the SSv2 variants: left/right is in the labels) always "
        "wins, although several official codes flip SSv2 training queries "
        "(shared notes, training_recipes.md section 4).",
        "",
        "## Writing a recipe table",
        "",
        "A method package ships `<method>.recipes.yaml` (or `recipes.yaml` when it hosts one method) beside "
        "the method's module, as package data; a class attribute `recipe_file` may name another file. "
        "Keys: `method`, `presets` (those the table applies to; default `[full]`), `notes`, `defaults`, "
        "`datasets.<dataset>` (with optional `shots.<shot>`) and `variants.<name>`, each a mapping of "
        "fields to `{value: ..., source: ...}`. Fields: " + ", ".join(f"`{k}` ({v[0]})" for k, v in FIELDS.items())
        + ". A `schedule` value is `{kind: constant}`, `{kind: multistep, milestones: [updates], factors: "
        "[one more than milestones], warmup_updates, warmup_start_factor}`, `{kind: cosine, warmup_updates, "
        "warmup_start_factor, min_factor, total_updates (default: the run's updates)}` or `{kind: iterations, "
        "steps_iter, epochs, lrs, iters_per_update, warmup_start_factor, epoch_rule: released | intended}` "
        "(a SOLVER block of the alibaba / D2ST code, converted to updates).",
        "",
    ]
    body: list[str] = []
    for name in sorted(methods):
        body += _doc_method(name, methods[name])
    return "\n".join(head + body).rstrip() + "\n"


def hosted_methods() -> dict[str, type]:
    """The methods registered by the fsar-bench distribution itself (not third-party plugins)."""
    from fsar_bench.registry import method_class, method_entries

    return {n: method_class(n) for n, e in method_entries().items() if e.origin.split(" ")[0] == "fsar-bench"}


__all__ = ["RECIPE_FIELDS", "RecipeTable", "ResolvedRecipe", "Sourced", "check_variant", "hosted_methods", "load_table",
           "method_sets", "method_table", "override_layers", "render_recipes_doc", "resolve_recipe",
           "with_overrides"]
