"""Open every video a run will read before the run writes anything (#11: nothing half-written).

A corrupt file found an hour into evaluation leaves a FAILED MLflow run and a half-filled run
folder behind; found here, it is a one-line error before the run exists. The probe opens each
container and reads its frame count (no frame is decoded, so a 10,000-video split takes seconds,
not minutes); a file whose header is fine but whose stream breaks later is still caught while
reading it, and the run then resumes from its last chunk once the file is fixed.

Videos that passed are remembered in `<results_dir>/cache/probe/<dataset>-<root digest>.json`
by (size, mtime), so a rerun probes only new or changed files.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fsar_bench.data.source import VideoSource
from fsar_bench.data.video import VideoError, num_frames
from fsar_bench.errors import FsarError

WORKERS = 2


def _stamp(path: Path) -> str | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}"


class Preflight:
    """The probe of one dataset root; `check` raises, `save` remembers what passed."""

    def __init__(self, source: VideoSource, cache_dir: Path | None) -> None:
        self.source = source
        root_id = hashlib.sha256(f"{source.root.resolve()}|{source.layout}".encode()).hexdigest()[:12]
        self.file = cache_dir / "probe" / f"{source.card.name}-{root_id}.json" if cache_dir else None
        self.passed: dict[str, str] = {}
        if self.file and self.file.exists():
            try:
                self.passed = dict(json.loads(self.file.read_text()))
            except (OSError, ValueError):
                self.passed = {}

    def check(self, keys: Iterable[tuple[str, str]], progress: Callable[[int, int], None] | None = None) -> int:
        """Probe the (class, video id) pairs not known good; returns how many were probed."""
        todo: list[tuple[str, Path, str | None]] = []
        for cls, vid in dict.fromkeys(keys):
            path = self.source.path(cls, vid)
            stamp = _stamp(path)
            if stamp is None or self.passed.get(f"{cls}/{vid}") != stamp:
                todo.append((f"{cls}/{vid}", path, stamp))

        def probe(item: tuple[str, Path, str | None]) -> VideoError | None:
            try:
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
