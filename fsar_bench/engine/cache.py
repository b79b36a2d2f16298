"""The per-video embedding cache.

Rows are keyed by (class, video id, role) inside a folder named by the model fingerprint:
method name, preset, hyperparameters, a digest of every weight and buffer, frames, the test
transform and the package version. Anything that changes an embedding changes the fingerprint,
so a stale row can never be read; test frame indices are a function of the video's frame count
and T (docs/episodes.md), and the video file's size and mtime are part of the row key.

Features live in memory up to `memory_limit` bytes; beyond that (or when a folder is given, so
that reruns, resumed runs and sweeps reuse them) they go to memory-mapped files, one per feature
stream, appended row by row. The index file is the commit point: it is rewritten atomically
after the rows it names are flushed, so a killed process leaves a consistent cache.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from fsar_bench.io import atomic_write
from fsar_bench.protocol import Features, Method

_SINGLE = "__tensor__"  # stream name of a plain-tensor feature


def model_fingerprint(method: Method, transform_key: str) -> str:
    """SHA-256 over what determines `embed`'s output: the method's code identity (digests of its
    source and of fsar-bench's, `fsar_bench.identity`: an edited `embed` re-embeds), hyperparameters,
    transform and weights."""
    from fsar_bench.identity import code_identity

    h = hashlib.sha256()
    h.update(json.dumps({"method": method.name or type(method).__qualname__, "preset": method.preset,
                         "hparams": method.hparams, "frames": method.frames, "transform": transform_key,
                         "code": code_identity(method.name or "", method)}, sort_keys=True, default=str).encode())
    for name, tensor in sorted(method.state_dict().items()):
        h.update(name.encode())
        t = tensor.detach().cpu().contiguous()
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _streams(feats: Features) -> dict[str, Tensor]:
    return {_SINGLE: feats} if isinstance(feats, Tensor) else dict(feats)


class FeatureStore:
    """Rows of per-video features, gathered into episode batches by row index."""

    def __init__(self, folder: Path | None = None, memory_limit: int = 2 << 30) -> None:
        self.folder = Path(folder) if folder else None
        self.memory_limit = memory_limit
        self.index: dict[str, int] = {}
        self._mem: dict[str, list[Tensor]] = {}
        self._mem_bytes = 0
        self._maps: dict[str, np.memmap] = {}
        self._meta: dict[str, dict] = {}
        self._tmp: tempfile.TemporaryDirectory | None = None
        if self.folder:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._load_index()

    # -- persistence -----------------------------------------------------------------------------
    def _index_path(self) -> Path:
        assert self.folder is not None
        return self.folder / "index.json"

    def _load_index(self) -> None:
        path = self._index_path()
        if path.exists():
            data = json.loads(path.read_text())
            self.index = data["rows"]
            self._meta = data["streams"]

    @contextmanager
    def _locked(self) -> Iterator[None]:
        assert self.folder is not None
        with open(self.folder / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _map(self, name: str, rows: int) -> np.memmap:
        meta = self._meta[name]
        path = self.folder / f"{name}.f32"  # type: ignore[operator]
        need = rows * int(np.prod(meta["shape"])) * 4
        if not path.exists() or path.stat().st_size < need:
            with open(path, "ab") as fh:
                fh.truncate(max(need, 4))
            self._maps.pop(name, None)
        if name not in self._maps or self._maps[name].shape[0] < rows:
            size = path.stat().st_size // (int(np.prod(meta["shape"])) * 4)
            self._maps[name] = np.memmap(path, dtype=np.float32, mode="r+", shape=(size, *meta["shape"]))
        return self._maps[name]

    def _spill(self) -> None:
        """Move the in-memory rows to memory-mapped files (a temp folder when none was given)."""
        self._tmp = tempfile.TemporaryDirectory(prefix="fsar-features-")
        self.folder = Path(self._tmp.name)
        pending, self._mem, self._mem_bytes = self._mem, {}, 0
        if pending:
            self._write_rows(0, {k: torch.cat(v) for k, v in pending.items()}, len(self.index))

    def _write_rows(self, start: int, streams: dict[str, Tensor], n: int) -> None:
        for name, t in streams.items():
            self._meta.setdefault(name, {"shape": list(t.shape[1:])})
            mm = self._map(name, start + n)
            mm[start:start + n] = t.float().numpy()
            mm.flush()

    # -- public ----------------------------------------------------------------------------------
    def __contains__(self, key: str) -> bool:
        return key in self.index

    def __len__(self) -> int:
        return len(self.index)

    def add(self, keys: list[str], feats: Features) -> None:
        """Append rows for new keys (keys already present are a caller error)."""
        if any(k in self.index for k in keys) or len(set(keys)) != len(keys):
            raise ValueError("FeatureStore.add takes only new, distinct keys")
        streams = {k: v.detach().cpu().float() for k, v in _streams(feats).items()}
        n = len(keys)
        size = sum(t.numel() * 4 for t in streams.values())
        if self.folder is None and self._mem_bytes + size > self.memory_limit:
            self._spill()
        if self.folder is None:
            for k, v in streams.items():
                self._mem.setdefault(k, []).append(v)
            self._mem_bytes += size
            start = len(self.index)
        elif self._tmp is not None:  # private spill folder: no other writer
            start = max(self.index.values(), default=-1) + 1
            self._write_rows(start, streams, n)
        else:  # shared cache folder: append and commit the index under one lock
            with self._locked():
                self._load_index()  # another process may have appended, perhaps these very keys
                fresh = [i for i, k in enumerate(keys) if k not in self.index]
                if len(fresh) < n:
                    keys, n = [keys[i] for i in fresh], len(fresh)
                    streams = {k: v[fresh] for k, v in streams.items()}
                start = max(self.index.values(), default=-1) + 1
                self._write_rows(start, streams, n)
                for i, key in enumerate(keys):
                    self.index[key] = start + i
                atomic_write(self._index_path(), json.dumps({"rows": self.index, "streams": self._meta}))
            return
        for i, key in enumerate(keys):
            self.index[key] = start + i

    def row_bytes(self) -> int:
        """Bytes of one row (all streams, float32): what gathering one video's features costs."""
        if self.folder is None:
            shapes = [bank[0].shape[1:] for bank in self._mem.values()]
        else:
            shapes = [meta["shape"] for meta in self._meta.values()]
        return sum(int(np.prod(shape)) * 4 for shape in shapes)

    def gather(self, rows: Tensor) -> Features:
        """Features of the given row numbers, shaped [*rows.shape, ...]."""
        out: dict[str, Tensor] = {}
        flat = rows.reshape(-1).numpy()
        names = list(self._mem) if self.folder is None else list(self._meta)
        for name in names:
            if self.folder is None:
                bank = self._mem[name]
                if len(bank) > 1:
                    self._mem[name] = bank = [torch.cat(bank)]
                data = bank[0][torch.from_numpy(flat)]
            else:
                mm = self._map(name, max(self.index.values()) + 1)
                data = torch.from_numpy(np.ascontiguousarray(mm[np.sort(np.unique(flat))]))
                lookup = np.searchsorted(np.sort(np.unique(flat)), flat)
                data = data[torch.from_numpy(lookup)]
            out[name] = data.view(*rows.shape, *data.shape[1:])
        return out[_SINGLE] if set(out) == {_SINGLE} else out
