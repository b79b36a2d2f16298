"""Dataset cards: everything the harness knows about a dataset, read from `datasets/<name>/card.yaml`.

A card names the split lists (one `<class>/<video id>` per line, the format every public FSAR
codebase uses), the on-disk layout that turns a split entry into a file path, the modality
(temporal datasets forbid horizontal flips), the action names for text branches and the frozen
episode seeds. Cards are data; adding a dataset means adding a folder, not code.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
import importlib.util
from pathlib import Path
from typing import Any

import yaml

from fsar_bench.errors import FsarError, suggest, unknown

SPLITS = ("train", "val", "test")
CARD_KEYS = {
    "name", "title", "modality", "flip", "splits", "layout", "class_map", "text_column", "seeds",
    "toy", "provenance", "notes", "frames_in_paper", "reported_name",
}
LAYOUT_KEYS = {"kind", "pattern", "ext"}
# Extensions a `video` layout cannot point at: images (use kind 'frames'), archives, data files.
# Anything else is handed to the decoders (ffmpeg reads far more containers than we could list).
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
NOT_VIDEO_SUFFIXES = {".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".rar", ".7z", ".txt", ".csv", ".json", ".pkl",
                      ".pickle", ".npy", ".npz", ".h5", ".hdf5", ".lmdb", ".pt", ".pth", ".yaml", ".yml", ".list"}


def datasets_dir() -> Path:
    """The folder holding the shipped dataset cards (the repo's `datasets/`, installed as the
    namespace package `fsar_datasets`: no `__init__.py`, so it can never shadow a real package)."""
    spec = importlib.util.find_spec("fsar_datasets")
    if spec is None or not spec.submodule_search_locations:
        raise FsarError("the dataset cards (package fsar_datasets) are not installed", "reinstall fsar-bench")
    return Path(list(spec.submodule_search_locations)[0])


@dataclass(frozen=True)
class Layout:
    """How a split entry maps to a file: `kind` 'video' or 'frames', `pattern` with {cls}, {cls_}, {id}.

    {cls_} is the class with spaces replaced by underscores (Kinetics folders), e.g.
    'video' + '{cls}/{id}.avi' (UCF101), 'video' + '{id}.webm' (SSv2), 'frames' + '{cls}/{id}'
    (a folder of numbered images per video).
    """

    kind: str = "video"
    pattern: str = "{cls}/{id}.mp4"

    def path(self, root: Path, cls: str, vid: str) -> Path:
        return root / self.pattern.format(cls=cls, cls_=cls.replace(" ", "_"), id=vid)

    @classmethod
    def from_mapping(cls, data: dict[str, Any], where: str) -> Layout:
        extra = set(data) - LAYOUT_KEYS
        if extra:
            raise unknown(f"layout key in {where},", sorted(extra)[0], LAYOUT_KEYS)
        kind = data.get("kind", "video")
        if kind not in ("video", "frames"):
            raise FsarError(f"layout kind {kind!r} in {where} is not supported", "use 'video' or 'frames'")
        pattern = data.get("pattern", "{cls}/{id}.mp4")
        if not isinstance(pattern, str) or "{id}" not in pattern:
            raise FsarError(f"layout pattern {pattern!r} in {where} does not contain {{id}}",
                            'write it like "{cls}/{id}.mp4" ({cls}, {cls_} and {id} are filled in per video)')
        suffix = Path(pattern).suffix.lower()
        if kind == "video" and suffix in IMAGE_SUFFIXES:
            raise FsarError(f"layout pattern {pattern!r} in {where} points at {suffix} images, not videos",
                            'for folders of frame images use {kind: frames, pattern: "{cls}/{id}"}')
        if kind == "video" and suffix in NOT_VIDEO_SUFFIXES:
            raise FsarError(f"layout pattern {pattern!r} in {where}: {suffix} is not a video container",
                            "extract or convert the videos (mp4, avi, webm, mkv, ...) and point the pattern at them")
        return cls(kind=kind, pattern=pattern)


@dataclass(frozen=True)
class Split:
    """One split list: its entries in file order, grouped by class."""

    name: str
    entries: tuple[tuple[str, str], ...]  # (class, video id), file order
    sha256: str

    @cached_property
    def by_class(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for cls, vid in self.entries:
            out.setdefault(cls, []).append(vid)
        return out

    @property
    def classes(self) -> list[str]:
        """Classes sorted by their UTF-8 bytes (the canonical order of the episode spec)."""
        return sorted(self.by_class, key=lambda c: c.encode())

    def __len__(self) -> int:
        return len(self.entries)


def parse_split(text: str, where: str) -> list[tuple[str, str]]:
    """Parse `<class>/<id>` lines (class and id split at the LAST '/')."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        cls, sep, vid = line.rpartition("/")
        if not sep or not cls or not vid:
            raise FsarError(f"{where}:{n}: line {line!r} is not '<class>/<video id>'",
                            "fix the split list (one '<class>/<video id>' per line)")
        out.append((cls, vid))
    return out


@dataclass
class DatasetCard:
    name: str
    title: str
    modality: str  # 'temporal' | 'spatial'
    flip: bool
    split_files: dict[str, str]
    layout: Layout
    folder: Path
    class_map_file: str | None = None
    text_column: str = "clipfsar_text_name"
    seeds: dict[str, str] = field(default_factory=dict)
    toy: dict[str, Any] | None = None
    provenance: str = ""
    notes: str = ""
    reported_name: str = ""

    @property
    def is_toy(self) -> bool:
        return self.toy is not None

    @lru_cache(maxsize=None)  # noqa: B019  (cards live for the process)
    def split(self, name: str) -> Split:
        if name not in self.split_files:
            raise unknown(f"split of dataset {self.name!r},", name, self.split_files)
        path = self.folder / self.split_files[name]
        try:
            data = path.read_bytes()
            text = data.decode("utf-8")
        except OSError as exc:
            raise FsarError(f"cannot read the {name} split list {path} of dataset {self.name!r} "
                            f"({exc.strerror or type(exc).__name__})",
                            f"restore it, or fix `splits` in {self.folder / 'card.yaml'}") from None
        except UnicodeDecodeError:
            raise FsarError(f"the {name} split list {path} is not UTF-8 text",
                            "write one '<class>/<video id>' per line, UTF-8 encoded") from None
        entries = tuple(parse_split(text, str(path)))
        known = self.map_classes
        if known is not None:
            for n, (cls, vid) in enumerate(entries, 1):
                if cls not in known:
                    hint = suggest(cls, known)
                    raise FsarError(f"split list {path} names class {cls!r} (entry {n}: '{cls}/{vid}'), which is not "
                                    f"in the class map {self.folder / str(self.class_map_file)}",
                                    (hint + " " if hint else "") + "fix the class name in the split list, or add the "
                                    "class to the class map")
        return Split(name, entries, hashlib.sha256(data).hexdigest())

    @cached_property
    def map_classes(self) -> set[str] | None:
        """The classes of the class map (None without one): every split entry must name one of them."""
        if not self.class_map_file:
            return None
        path = self.folder / self.class_map_file
        try:
            with open(path, newline="") as fh:
                reader = csv.DictReader(fh, delimiter="\t")
                if "folder_class" not in (reader.fieldnames or []):
                    raise FsarError(f"class map {path} of dataset {self.name!r} has no 'folder_class' column",
                                    "write it as tab-separated values with a header row naming 'folder_class'")
                return {row["folder_class"] for row in reader if row.get("folder_class")}
        except OSError as exc:
            raise FsarError(f"class map {path} of dataset {self.name!r} cannot be read ({exc.strerror or exc})",
                            f"restore it, or fix `class_map` in {self.folder / 'card.yaml'}") from None

    @cached_property
    def text_names(self) -> dict[str, str]:
        """Action name per class for text branches: the class map's text column, else the class."""
        names: dict[str, str] = {}
        if self.class_map_file:
            with open(self.folder / self.class_map_file, newline="") as fh:
                for row in csv.DictReader(fh, delimiter="\t"):
                    text = (row.get(self.text_column) or "").strip()
                    if text:
                        names[row["folder_class"]] = text
        return names

    def text_name(self, cls: str) -> str:
        return self.text_names.get(cls) or cls.replace("_", " ")

    def __hash__(self) -> int:
        return hash(self.name)

    def check_disjoint(self) -> None:
        """A class in two splits would leak test classes into training: refuse it."""
        seen: dict[str, str] = {}
        for split in self.split_files:
            for cls in self.split(split).by_class:
                if cls in seen:
                    raise FsarError(f"class {cls!r} of dataset {self.name!r} is in both the {seen[cls]} "
                                    f"and the {split} split", "fix the split lists so that splits share no class")
                seen[cls] = split


def load_card(path: Path) -> DatasetCard:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise FsarError(f"dataset card {path} is not valid YAML ({str(exc).splitlines()[0]})", "fix its syntax") from None
    if not isinstance(data, dict):
        raise FsarError(f"dataset card {path} is not a mapping", "write it as 'key: value' lines")
    extra = set(data) - CARD_KEYS
    if extra:
        raise unknown(f"key in dataset card {path},", sorted(extra)[0], CARD_KEYS)
    modality = data.get("modality", "spatial")
    if modality not in ("temporal", "spatial"):
        raise FsarError(f"modality {modality!r} in {path}", "use 'temporal' or 'spatial'")
    return DatasetCard(
        name=data["name"], title=data.get("title", data["name"]), modality=modality,
        flip=bool(data.get("flip", modality == "spatial")), split_files=dict(data["splits"]),
        layout=Layout.from_mapping(data.get("layout", {}), str(path)), folder=path.parent,
        class_map_file=data.get("class_map"), text_column=data.get("text_column", "clipfsar_text_name"),
        seeds={k: str(v) for k, v in (data.get("seeds") or {}).items()}, toy=data.get("toy"),
        provenance=data.get("provenance", ""), notes=data.get("notes", ""),
        reported_name=data.get("reported_name", data["name"]),
    )


@lru_cache(maxsize=None)
def _all_cards() -> dict[str, DatasetCard]:
    cards = {}
    for path in sorted(datasets_dir().glob("*/card.yaml")):
        card = load_card(path)
        cards[card.name] = card
    return cards


def list_cards() -> list[str]:
    return sorted(_all_cards())


def get_card(name: str) -> DatasetCard:
    cards = _all_cards()
    if name not in cards:
        raise unknown("dataset", name, cards, "run `fsar-bench list datasets`")
    return cards[name]
