"""Open every video a run will read before the run writes anything (#11, #15: nothing half-written).

A corrupt file found an hour into evaluation leaves a FAILED MLflow run and a half-filled run
folder behind; found here, it is a one-line error before the run exists. The probe opens each
video container and reads its frame count (no frame is decoded, so a 10,000-video split takes
seconds, not minutes); a file whose header is fine but whose stream breaks later is still caught
while reading it, and the run then resumes from its last chunk once the file is fixed. Frame
folders are cheap to check fully: every frame's start and end markers are read (a truncated
JPEG or PNG anywhere in the folder is caught, including the random frames training reads) and the
run's test frames (the `frames` segment centres) are decoded, exactly what evaluation reads.

What passed is remembered in `<results_dir>/cache/probe/<dataset>-<root digest>.json`: a video
by (size, mtime), a frame folder by the names, sizes and mtimes of its files and the frame count
probed, so a rerun probes only new or changed videos.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fsar_bench.data.source import VideoSource
from fsar_bench.data.video import VideoError, num_frames, verify_frame_folder
from fsar_bench.errors import FsarError

WORKERS = 2
DEFAULT_FRAMES = 8  # the protocol's frames per video, when the caller does not say


def cache_name(source: VideoSource) -> str:
    """`<dataset>-<12 hex>`: the name of a dataset root's files under the cache folder (the probe's
    memory, the availability manifest); the digest is of the resolved root and the layout."""
    root_id = hashlib.sha256(f"{source.root.resolve()}|{source.layout}".encode()).hexdigest()[:12]
    return f"{source.card.name}-{root_id}"


def _stamp(path: Path, frames: int) -> str | None:
    """What must not change for a past pass to stand: (size, mtime) of a video; of a frame folder,
    the names, sizes and mtimes of its files and the number of test frames decoded."""
    try:
        if not path.is_dir():
            st = path.stat()
            return f"{st.st_size}:{st.st_mtime_ns}"
        digest = hashlib.sha256()
        with os.scandir(path) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                st = entry.stat()
                digest.update(f"{entry.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return f"frames:{frames}:{digest.hexdigest()[:24]}"
    except OSError:
        return None


class Preflight:
    """The probe of one dataset root; `check` raises, `save` remembers what passed.

    `frames` is the number of test frames per video the run reads (decoded in frame folders).
    """

    def __init__(self, source: VideoSource, cache_dir: Path | None, frames: int = DEFAULT_FRAMES) -> None:
        self.source = source
        self.frames = frames
        self.file = cache_dir / "probe" / f"{cache_name(source)}.json" if cache_dir else None
        self.passed: dict[str, str] = {}
        if self.file and self.file.exists():
            try:
                self.passed = dict(json.loads(self.file.read_text()))
            except (OSError, ValueError):
                self.passed = {}

    def check(self, keys: Iterable[tuple[str, str]], progress: Callable[[int, int], None] | None = None) -> int:
        """Probe the (class, video id) pairs not known good; returns how many were probed."""
        unique = [(f"{cls}/{vid}", self.source.path(cls, vid)) for cls, vid in dict.fromkeys(keys)]
        with ThreadPoolExecutor(WORKERS) as pool:  # a frame folder's stamp stats every frame
            stamps = list(pool.map(lambda item: _stamp(item[1], self.frames), unique))
        todo: list[tuple[str, Path, str | None]] = [
            (k, path, stamp) for (k, path), stamp in zip(unique, stamps) if stamp is None or self.passed.get(k) != stamp]

        def probe(item: tuple[str, Path, str | None]) -> VideoError | None:
            try:
                if item[1].is_dir():
                    verify_frame_folder(item[1], self.frames)
                else:
                    num_frames(item[1])
            except VideoError as exc:
                return exc
            return None

        bad: list[VideoError] = []
        with ThreadPoolExecutor(WORKERS) as pool:
            for n, (item, err) in enumerate(zip(todo, pool.map(probe, todo)), 1):
                if err is None and item[2] is not None:
                    self.passed[item[0]] = item[2]
                elif err is not None:
                    bad.append(err)
                if progress and (n % 64 == 0 or n == len(todo)):
                    progress(n, len(todo))
        if bad:
            first = bad[0]
            more = f" and {len(bad) - 1} more of {self.source.card.name}" if len(bad) > 1 else ""
            raise FsarError(f"{first.problem}{more}",
                            f"{first.fix or 're-download or re-encode the file'}"
                            + (f" (`fsar-bench data check {self.source.card.name}`)" if more else ""))
        return len(todo)

    def save(self) -> None:
        """Remember the videos that passed (atomically; a failure to write only costs a re-probe)."""
        if not self.file:
            return
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.file.with_name(f".{self.file.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.passed, sort_keys=True))
            os.replace(tmp, self.file)
        except OSError:
            pass
