"""Is a real dataset complete and decodable? (`fsar-bench data check`).

`check_dataset` opens every video of the split lists exactly as a test episode would (the
segment-centre frames of `sampling.test_indices`; in a frame folder also the start and end
markers of every frame), collects the missing and the undecodable ones, and writes an
availability manifest under the results folder, never into the dataset root (often a read-only
shared mount):

    <results_dir>/cache/availability/<dataset>-<root digest>.json   (or any path given as `output`)
    {"version": 1, "dataset", "root", "layout", "frames", "checked_at",
     "splits": {split: {"videos", "available", "missing", "corrupt", "list_sha256"}},
     "missing": [key, ...], "corrupt": [key, ...], "corrupt_reasons": {key: reason},
     "available": N, "digest": SHA-256 hex}

A key is the split-list line `<class>/<video id>`. `digest` is the SHA-256 of the sorted
available keys, each followed by a newline (UTF-8): two copies of a dataset with the same
digest hold the same usable videos. `missing_videos` is the fast existence-only check the run
command calls before a run. Manifests that older versions wrote into the root
(`<root>/.fsar-availability.json`) are still read (`find_manifest`), never written.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fsar_bench.data import sampling
from fsar_bench.data.cards import SPLITS
from fsar_bench.data.preflight import cache_name
from fsar_bench.data.source import VideoSource
from fsar_bench.data.video import read_frames, verify_frame_folder
from fsar_bench.errors import FsarError, unknown
from fsar_bench.io import atomic_write

MANIFEST_NAME = ".fsar-availability.json"  # the legacy manifest inside a dataset root (read only)
MANIFEST_FOLDER = "availability"  # under the cache folder
MANIFEST_VERSION = 1
WORKERS = 2


def key(cls: str, vid: str) -> str:
    """The split-list line of a video, its key in reports and manifests."""
    return f"{cls}/{vid}"


def availability_digest(keys: Iterable[str]) -> str:
    """SHA-256 of the sorted keys, one per line (each followed by a newline), UTF-8."""
    text = "".join(k + "\n" for k in sorted(keys))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class SplitCounts:
    videos: int = 0
    available: int = 0
    missing: int = 0
    corrupt: int = 0


@dataclass
class CheckReport:
    dataset: str
    root: Path
    frames: int
    splits: dict[str, SplitCounts]
    missing: list[str]  # keys, split-list order
    corrupt: dict[str, str]  # key -> reason, split-list order
    paths: dict[str, Path]  # key -> file, for the missing and corrupt keys
    digest: str
    available: int
    manifest: Path | None = None  # where the manifest was written
    manifest_error: str | None = None  # why it could not be written
    data: dict[str, Any] = field(default_factory=dict)  # the manifest content

    @property
    def ok(self) -> bool:
        return not self.missing and not self.corrupt

    @property
    def total(self) -> int:
        return sum(c.videos for c in self.splits.values())


def _check_splits(source: VideoSource, splits: Sequence[str]) -> list[str]:
    splits = list(dict.fromkeys(splits))
    for split in splits:
        if split not in source.card.split_files:
            raise unknown(f"split of dataset {source.card.name!r},", split, source.card.split_files)
    return splits


def _exists(source: VideoSource, path: Path) -> bool:
    return path.is_dir() if source.layout.kind == "frames" else path.exists()


def missing_videos(source: VideoSource, split: str) -> list[str]:
    """Keys of the split's videos whose file (or frame folder) does not exist; existence only, fast."""
    _check_splits(source, [split])
    return [key(c, v) for c, v in source.card.split(split).entries if not _exists(source, source.path(c, v))]


def default_cache_dir() -> Path:
    """`<results_dir>/cache` of the default configuration (`fsar-runs/cache`)."""
    from fsar_bench.config import DEFAULTS

    return Path(os.path.expanduser(DEFAULTS["results_dir"])) / "cache"


def manifest_path(source: VideoSource, cache_dir: Path | None = None) -> Path:
    """Where `check_dataset` writes the manifest of this dataset root (keyed by dataset, root and layout)."""
    return Path(cache_dir or default_cache_dir()) / MANIFEST_FOLDER / f"{cache_name(source)}.json"


def find_manifest(source: VideoSource, cache_dir: Path | None = None) -> Path | None:
    """The newest manifest of this root: the one under the cache folder, else a legacy one in the root."""
    for path in (manifest_path(source, cache_dir), source.root / MANIFEST_NAME):
        if path.is_file():
            return path
    return None


def _decode_problem(path: Path, frames: int) -> str | None:
    """None if the test frames of `path` decode (and, in a frame folder, every frame is whole), else
    a one-line reason."""
    try:
        if path.is_dir():
            verify_frame_folder(path, frames)
            return None
        clip, idx = read_frames(path, lambda n: sampling.test_indices(n, frames))
    except FsarError as exc:
        reason = exc.problem
        prefix = f"cannot decode {path} ("
        if reason.startswith(prefix) and reason.endswith(")"):
            reason = reason[len(prefix):-1]
        return reason.replace(str(path), path.name)  # the caller knows the path
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    if clip.ndim != 4 or clip.shape[0] != len(idx) or clip.shape[-1] != 3 or 0 in clip.shape:
        return f"decoded an unexpected array of shape {tuple(clip.shape)}"
    return None


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def check_dataset(source: VideoSource, splits: Sequence[str] = SPLITS, frames: int = 8,
                  progress: Callable[[int, int], None] | None = None, output: Path | None = None,
                  write: bool = True, workers: int = WORKERS, cache_dir: Path | None = None) -> CheckReport:
    """Check that every video of `splits` exists and decodes at its `frames` test frames.

    Writes the availability manifest to `output` (default `manifest_path(source, cache_dir)`,
    cache_dir defaulting to `fsar-runs/cache`) unless `write` is false; nothing is written into
    the dataset root. A manifest that cannot be written is reported in `manifest_error`.
    """
    if frames <= 0:
        raise FsarError(f"--frames must be positive, got {frames}", "pass e.g. --frames 8")
    splits = _check_splits(source, splits)
    entries: list[tuple[str, str, str, Path]] = []  # split, key, ...
    seen: set[str] = set()
    for split in splits:
        for c, v in source.card.split(split).entries:
            k = key(c, v)
            if k not in seen:
                seen.add(k)
                entries.append((split, k, c, source.path(c, v)))

    def one(item: tuple[str, str, str, Path]) -> str | None:
        path = item[3]
        if not _exists(source, path):
            return "missing"
        return _decode_problem(path, frames)

    total = len(entries)
    results: list[str | None] = []
    if progress:
        progress(0, total)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for i, res in enumerate(pool.map(one, entries), 1):
            results.append(res)
            if progress:
                progress(i, total)

    counts = {s: SplitCounts() for s in splits}
    missing: list[str] = []
    corrupt: dict[str, str] = {}
    paths: dict[str, Path] = {}
    available: list[str] = []
    for (split, k, _, path), res in zip(entries, results):
        counts[split].videos += 1
        if res is None:
            counts[split].available += 1
            available.append(k)
        elif res == "missing":
            counts[split].missing += 1
            missing.append(k)
            paths[k] = path
        else:
            counts[split].corrupt += 1
            corrupt[k] = res
            paths[k] = path

    digest = availability_digest(available)
    data = {
        "version": MANIFEST_VERSION,
        "dataset": source.card.name,
        "root": os.path.abspath(source.root),
        "layout": {"kind": source.layout.kind, "pattern": source.layout.pattern},
        "frames": frames,
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "splits": {s: {"videos": c.videos, "available": c.available, "missing": c.missing,
                       "corrupt": c.corrupt, "list_sha256": source.card.split(s).sha256}
                   for s, c in counts.items()},
        "available": len(available),
        "missing": missing,
        "corrupt": list(corrupt),
        "corrupt_reasons": corrupt,
        "digest": digest,
    }
    report = CheckReport(source.card.name, source.root, frames, counts, missing, corrupt, paths, digest,
                         len(available), data=data)
    if write:
        target = Path(output) if output else manifest_path(source, cache_dir)
        try:
            _write_json_atomic(target, data)
            report.manifest = target
        except OSError as exc:
            report.manifest_error = f"cannot write {target} ({exc.strerror or exc})"
    return report


def read_manifest(path: Path) -> dict[str, Any]:
    """A manifest written by `check_dataset` (a file, or a dataset root holding a legacy one)."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.exists():
        raise FsarError(f"no availability manifest at {path}", "run `fsar-bench data check DATASET --root PATH`")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FsarError(f"availability manifest {path} is not valid JSON ({exc})",
                        "delete it and re-run `fsar-bench data check`") from None
