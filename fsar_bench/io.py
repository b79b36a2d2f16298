"""Atomic file writes: a reader (or a crash) sees the old file or the complete new one, never a part.

Every file fsar-bench writes goes through `atomic_write` (text or bytes) or `atomic_path` (for
writers that want a path: parquet, torch.save, savefig). The temporary file sits beside the target
(same filesystem, so `os.replace` is atomic) as `.<name>.<pid>.tmp`, and is removed when the write
fails (disk full, interrupted), so a failed write leaves no temporary file behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temp_name(path: Path) -> Path:
    """The temporary file a write of `path` goes through (hidden, per process)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on any error it is deleted.

    `suffix` is appended to the temporary name for writers that pick a format from it (savefig).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    if suffix:
        tmp = tmp.with_name(tmp.name + suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Write `data` (text as UTF-8 with '\\n' line ends, or bytes) to `path` atomically."""
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(data)
