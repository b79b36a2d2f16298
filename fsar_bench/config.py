"""bench.yaml: dataset roots, protocol defaults, method overrides, tracking.

Looked up as `--config FILE`, else `$FSAR_BENCH_CONFIG`, else `./bench.yaml`, else the defaults
below. Unknown keys are errors with suggestions; CLI flags override the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fsar_bench.errors import FsarError, unknown

DEFAULTS: dict[str, Any] = {
    "data_root": "~/.cache/fsar-bench/data",  # toy datasets are generated here on first use
    "results_dir": "fsar-runs",  # per-run results, checkpoints, embedding spill files
    "tracking_uri": None,  # default: sqlite:///<results_dir>/mlflow.db
    "experiment": "fsar-bench",
    "device": "auto",  # auto | cpu | cuda | cuda:N
    "num_workers": 0,  # data-loader worker processes
    "protocol": {"way": 5, "shot": 1, "query": 1, "test_episodes": 10_000, "val_episodes": 1_000},
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
}
PROTOCOL_KEYS = set(DEFAULTS["protocol"])
DATASET_KEYS = {"root", "layout", "masks"}
TRAIN_KEYS = {"steps", "lr", "weight_decay", "episodes_per_update", "val_every", "val_episodes",
              "train_query", "checkpoint_every", "seed"}


@dataclass
class BenchConfig:
    data: dict[str, Any] = field(default_factory=lambda: _merge(DEFAULTS, {}))
    source: str = "defaults"

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
        uri = os.environ.get("MLFLOW_TRACKING_URI") or self.data["tracking_uri"]
        return uri or f"sqlite:///{(self.results_dir / 'mlflow.db').as_posix()}"

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


def _validate(data: dict[str, Any], where: str) -> None:
    for key in data:
        if key not in DEFAULTS:
            raise unknown(f"key in {where},", key, DEFAULTS)
    for key in data.get("protocol") or {}:
        if key not in PROTOCOL_KEYS:
            raise unknown(f"protocol key in {where},", key, PROTOCOL_KEYS)
    for key in data.get("train") or {}:
        if key not in TRAIN_KEYS:
            raise unknown(f"train key in {where},", key, TRAIN_KEYS)
    for name in data.get("sweeps") or {}:
        if name not in DEFAULTS["sweeps"]:
            raise unknown(f"sweep in {where},", name, DEFAULTS["sweeps"])
    for name, entry in (data.get("datasets") or {}).items():
        if not isinstance(entry, dict):
            raise FsarError(f"datasets.{name} in {where} is not a mapping", "write it as {root: PATH}")
        for key in entry:
            if key not in DATASET_KEYS:
                raise unknown(f"key of datasets.{name} in {where},", key, DATASET_KEYS)


def load_config(path: str | Path | None = None) -> BenchConfig:
    path = path or os.environ.get("FSAR_BENCH_CONFIG")
    if path is None and Path("bench.yaml").exists():
        path = "bench.yaml"
    if path is None:
        return BenchConfig()
    p = Path(path)
    if not p.exists():
        raise FsarError(f"config file {p} does not exist", "pass an existing --config or create bench.yaml")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0]
        raise FsarError(f"{p} is not valid YAML ({first})", "fix the syntax at the place it names") from None
    if not isinstance(data, dict):
        raise FsarError(f"{p} is not a mapping of keys to values", "see the bench.yaml shipped with fsar-bench")
    _validate(data, str(p))
    return BenchConfig(_merge(DEFAULTS, {k: v for k, v in data.items() if v is not None or k == "tracking_uri"}),
                       str(p))
