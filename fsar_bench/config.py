"""bench.yaml: dataset roots, protocol defaults, method overrides, tracking.

Looked up as `--config FILE`, else `$FSAR_BENCH_CONFIG`, else `./bench.yaml`, else the defaults
below. Unknown keys are errors with suggestions; CLI flags override the file.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fsar_bench.episodes import CANONICAL_EPISODES, CANONICAL_QUERY, VAL_EPISODES
from fsar_bench.errors import FsarError, unknown
from fsar_bench.ui import clip, one_line

DEFAULTS: dict[str, Any] = {
    "data_root": "~/.cache/fsar-bench/data",  # toy datasets are generated here on first use
    "results_dir": "fsar-runs",  # per-run results, checkpoints, embedding spill files
    "tracking_uri": None,  # default: sqlite:///<results_dir>/mlflow.db
    "experiment": "fsar-bench",
    "device": "auto",  # auto | cpu | cuda | cuda:N
    "num_workers": "auto",  # data-loader worker processes decoding videos; auto: engine/runner.py num_workers
    "threads": None,  # torch intra-op threads per process; null: torch's default (one per core)
    "protocol": {"way": 5, "shot": 1, "query": CANONICAL_QUERY, "test_episodes": CANONICAL_EPISODES,
                 "val_episodes": VAL_EPISODES},
    "datasets": {},  # name -> {root: PATH, layout: {kind, pattern}}
    "methods": {},  # name -> {preset name -> {hyperparameter: value}}
    "train": {},  # training overrides for every run: steps, lr, ...
    "sweeps": {  # suite definitions of `fsar-bench sweep KIND`
        "nway": {"ways": [5, 6, 7, 8, 9, 10], "shot": 1},
        "shot": {"shots": [1, 3, 5], "way": 5},
        "frames": {"frames": [2, 4, 6, 8, 10]},
        "cross-dataset": {"pairs": [["kinetics100", "hmdb51"], ["kinetics100", "ssv2_small"]]},
        "efficiency": {"methods": ["protonet"]},
    },
    "launcher": {},  # cluster jobs of `--launcher submitit`: fsar_bench.launch.config, docs/cluster.md
}
PROTOCOL_KEYS = set(DEFAULTS["protocol"])
DATASET_KEYS = {"root", "layout", "masks"}
# bench.yaml `train`: the recipe fields (fsar_bench.recipes.RECIPE_FIELDS, checked equal by tests/test_recipes.py;
# their values are checked when the recipe is resolved) and the training seed
TRAIN_KEYS = {"steps", "lr", "weight_decay", "episodes_per_update", "val_every", "val_episodes",
              "train_query", "checkpoint_every", "optimizer", "schedule", "frames", "image_size", "flip", "jitter",
              "train_shot", "seed"}
MAPPINGS = ("protocol", "datasets", "methods", "train", "sweeps")
# value checks: key -> (what it must be, example, test); int checks exclude bools (YAML `yes`)
_INT = lambda lo: (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= lo)  # noqa: E731
_NUM = lambda lo, strict: (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
                           and math.isfinite(v) and (v > lo if strict else v >= lo))
_STR = lambda v: isinstance(v, str) and bool(v.strip())  # noqa: E731
DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
VALUE_CHECKS: dict[str, tuple[str, str, Any]] = {
    "data_root": ("a folder path", "~/.cache/fsar-bench/data", _STR),
    "results_dir": ("a folder path", "fsar-runs", _STR),
    "tracking_uri": ("a tracking URI or null", "null", lambda v: v is None or _STR(v)),
    "experiment": ("a name", "fsar-bench", _STR),
    "device": ("auto, cpu, cuda or cuda:N", "auto", lambda v: isinstance(v, str) and bool(DEVICE_RE.match(v))),
    "num_workers": ("auto or an integer >= 0", "auto", lambda v: v == "auto" or _INT(0)(v)),
    "threads": ("an integer >= 1 or null", "null", lambda v: v is None or _INT(1)(v)),
    "protocol.way": ("an integer >= 1", "5", _INT(1)),
    "protocol.shot": ("an integer >= 0", "1", _INT(0)),
    "protocol.query": ("an integer >= 1", "1", _INT(1)),
    "protocol.test_episodes": ("an integer >= 1", "10000", _INT(1)),
    "protocol.val_episodes": ("an integer >= 1", "1000", _INT(1)),
    "train.steps": ("an integer >= 0", "500", _INT(0)),
    "train.lr": ("a number > 0", "1.0e-3", _NUM(0, True)),
    "train.weight_decay": ("a number >= 0", "0.0", _NUM(0, False)),
    "train.episodes_per_update": ("an integer >= 1", "16", _INT(1)),
    "train.val_every": ("an integer >= 0", "1000", _INT(0)),
    "train.val_episodes": ("an integer >= 1", "1000", _INT(1)),
    "train.train_query": ("an integer >= 1", "5", _INT(1)),
    "train.checkpoint_every": ("an integer >= 1", "500", _INT(1)),
    "train.seed": ("a string or an integer", "0", lambda v: isinstance(v, (str, int)) and not isinstance(v, bool)),
}


@dataclass
class BenchConfig:
    data: dict[str, Any] = field(default_factory=lambda: _merge(DEFAULTS, {}))
    source: str = "defaults"
    file_tracking_uri: str | None = None  # the file's value: a different data["tracking_uri"] came from a flag

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    @property
    def results_dir(self) -> Path:
        return Path(os.path.expanduser(self.data["results_dir"]))

    @property
    def data_root(self) -> Path:
        return Path(os.path.expanduser(os.environ.get("FSAR_BENCH_DATA", self.data["data_root"])))

    @property
    def tracking_uri(self) -> str:
        """--tracking-uri (set into data after loading), else $MLFLOW_TRACKING_URI, else the file's, else sqlite."""
        uri = self.data["tracking_uri"]
        if not uri or uri == self.file_tracking_uri:
            uri = os.environ.get("MLFLOW_TRACKING_URI") or uri
        return uri or f"sqlite:///{(self.results_dir / 'mlflow.db').as_posix()}"

    @property
    def tracking_uri_origin(self) -> str:
        """Where `tracking_uri` comes from, for error messages."""
        uri = self.data["tracking_uri"]
        if uri and uri != self.file_tracking_uri:
            return "--tracking-uri"
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return "$MLFLOW_TRACKING_URI"
        if uri:
            return f"tracking_uri in {self.source}"
        return "the default store in results_dir"

    def dataset_root(self, name: str) -> Path | None:
        entry = self.data["datasets"].get(name) or {}
        root = entry.get("root")
        return Path(os.path.expanduser(root)) if root else None

    def dataset_layout(self, name: str) -> dict[str, Any] | None:
        return (self.data["datasets"].get(name) or {}).get("layout")

    def dataset_masks(self, name: str) -> Path | None:
        masks = (self.data["datasets"].get(name) or {}).get("masks")
        return Path(os.path.expanduser(masks)) if masks else None

    def method_overrides(self, method: str, preset: str) -> dict[str, Any]:
        return dict(((self.data["methods"].get(method) or {}).get(preset)) or {})


DEEP = {"protocol", "sweeps"}  # keys whose mappings merge with the defaults instead of replacing them


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for k, v in over.items():
        out[k] = {**out[k], **v} if k in DEEP and isinstance(v, dict) else v
    return out


def _check_value(key: str, value: Any, where: str) -> None:
    what, example, ok = VALUE_CHECKS[key]
    if not ok(value):
        fix = f"write e.g. `{key.rpartition('.')[2]}: {example}`"
        if isinstance(value, str) and key in ("train.lr", "train.weight_decay"):
            fix += " (YAML reads 1e-3 as text: a float needs a dot, 1.0e-3)"
        raise FsarError(f"{key} in {where} is {clip(value)}, not {what}", fix)


def _validate(data: dict[str, Any], where: str) -> None:
    for key in data:
        if key not in DEFAULTS:
            raise unknown("key", key, DEFAULTS, where=f"in {where}")
    for key in MAPPINGS:
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise FsarError(f"{key} in {where} is {type(data[key]).__name__} {clip(data[key])}, not a mapping",
                            f"write it as `{key}: {{name: value, ...}}` or indented `name: value` lines "
                            "(see the bench.yaml shipped with fsar-bench)")
    for key, value in data.items():
        if key in VALUE_CHECKS and (value is not None or key == "tracking_uri"):
            _check_value(key, value, where)
    from fsar_bench.launch.config import validate as validate_launcher

    validate_launcher(data.get("launcher"), where)
    for key, value in (data.get("protocol") or {}).items():
        if key not in PROTOCOL_KEYS:
            raise unknown("protocol key", key, PROTOCOL_KEYS, where=f"in {where}")
        _check_value(f"protocol.{key}", value, where)
    for key, value in (data.get("train") or {}).items():
        if key not in TRAIN_KEYS:
            raise unknown("train key", key, TRAIN_KEYS, where=f"in {where}")
        _check_value(f"train.{key}", value, where)
    for name, entry in (data.get("sweeps") or {}).items():
        if name not in DEFAULTS["sweeps"]:
            raise unknown("sweep", name, DEFAULTS["sweeps"], where=f"in {where}")
        if not isinstance(entry, dict):
            raise FsarError(f"sweeps.{name} in {where} is not a mapping",
                            f"write it like the default: {name}: {DEFAULTS['sweeps'][name]}")
    for name, entry in (data.get("datasets") or {}).items():
        if not isinstance(entry, dict):
            raise FsarError(f"datasets.{name} in {where} is not a mapping", "write it as {root: PATH}")
        for key in entry:
            if key not in DATASET_KEYS:
                raise unknown("key", key, DATASET_KEYS, where=f"of datasets.{name} in {where}")
        for key in ("root", "masks"):
            if entry.get(key) is not None and not _STR(entry[key]):
                raise FsarError(f"datasets.{name}.{key} in {where} is {clip(entry[key])}, not a folder path",
                                f"write it as {{{key}: /path/to/folder}}")
        if entry.get("layout") is not None:
            if not isinstance(entry["layout"], dict):
                raise FsarError(f"datasets.{name}.layout in {where} is not a mapping",
                                'write it as {kind: video, pattern: "{cls}/{id}.mp4"}')
            from fsar_bench.data.cards import Layout

            Layout.from_mapping(entry["layout"], f"datasets.{name}.layout in {where}")
    for name, presets in (data.get("methods") or {}).items():
        if presets is None:
            continue
        if not isinstance(presets, dict) or not all(v is None or isinstance(v, dict) for v in presets.values()):
            raise FsarError(f"methods.{name} in {where} is not a mapping of presets to hyperparameters",
                            f"write it as `{name}: {{tiny: {{image_size: 48}}}}`")


def load_config(path: str | Path | None = None) -> BenchConfig:
    path = path or os.environ.get("FSAR_BENCH_CONFIG")
    if path is None and Path("bench.yaml").exists():
        path = "bench.yaml"
    if path is None:
        return BenchConfig()
    p = Path(path)
    if not p.exists():
        raise FsarError(f"config file {p} does not exist", "pass an existing --config or create bench.yaml")
    if p.is_dir():
        raise FsarError(f"config file {p} is a folder", f"pass the YAML file itself, e.g. --config {p / 'bench.yaml'}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FsarError(f"config file {p} is not UTF-8 text (byte {exc.start} cannot be decoded)",
                        "save it as UTF-8 (bench.yaml is YAML text)") from None
    except OSError as exc:
        raise FsarError(f"config file {p} cannot be read ({exc.strerror or type(exc).__name__})",
                        "fix its permissions or pass another --config") from None
    try:
        data = yaml.safe_load(text) or {}
    except (yaml.YAMLError, ValueError, RecursionError) as exc:  # ValueError: an int of > 4300 digits
        first = one_line((str(exc).splitlines() or [type(exc).__name__])[0], 200)
        raise FsarError(f"{p} is not valid YAML ({first})", "fix the syntax at the place it names") from None
    if not isinstance(data, dict):
        raise FsarError(f"{p} is not a mapping of keys to values", "see the bench.yaml shipped with fsar-bench")
    _validate(data, str(p))
    return BenchConfig(_merge(DEFAULTS, {k: v for k, v in data.items() if v is not None or k == "tracking_uri"}),
                       str(p), data.get("tracking_uri"))
