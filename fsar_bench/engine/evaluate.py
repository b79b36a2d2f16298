"""Evaluation at the cost floor: embed each distinct (video, role) once, then score episodes in batches.

Features from `Method.embed` do not depend on the episode, so a test split of ~300-3,000 videos
is embedded once instead of once per episode (10,000 x 10 for 5-way 1-shot). Role is 'support'
(embedded with its class text) or 'query' for text-conditioned methods, 'video' otherwise.
`cache=False` is the reference protocol (re-embed the videos of every episode), kept to verify
that both give the same predictions and to measure the difference.

Per-episode results are appended in chunks, each written atomically, so an interrupted
evaluation resumes where it stopped and ends with exactly the episode count.

Under torchrun the same work is split across the ranks and gives the single-process results
exactly (docs/distributed.md). There is one code path: a single process is the sharded
evaluation with one rank (`_Ranks`), whose collectives return their input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from fsar_bench.data.source import VideoSource
from fsar_bench.data.transforms import ClipTransform
from fsar_bench.engine import distributed as dist
from fsar_bench.engine.cache import FeatureStore, model_fingerprint
from fsar_bench.episodes.sampler import Episode, EpisodeSet
from fsar_bench.io import atomic_path
from fsar_bench.protocol import Features, Method, map_features

Key = tuple[str, str, str]  # (class, video id, role)
Progress = Callable[[str, int, int], None]
RESULT_COLUMNS = ["episode", "query_ids", "labels", "preds", "logits", "n_query", "n_correct", "accuracy"]


def clip_transform(method: Method, source: VideoSource, jitter: float = 0.0) -> ClipTransform:
    return ClipTransform.for_size(method.image_size, method.mean, method.std, flip=source.card.flip, jitter=jitter)


def _role(method: Method, support: bool) -> str:
    if not method.uses_text:
        return "video"
    return "support" if support else "query"


def episode_keys(method: Method, ep: Episode) -> tuple[list[Key], list[Key]]:
    s = [(c, v, _role(method, True)) for c, v, _ in ep.support_keys()]
    q = [(c, v, _role(method, False)) for c, v, _ in ep.query_keys()]
    return s, q


def _plan(keys: list[Key], batch_size: int) -> list[list[Key]]:
    """The embedding batches of `keys`: supports and queries in separate batches, in key order."""
    out: list[list[Key]] = []
    for role in dict.fromkeys(k[2] for k in keys):
        same = [k for k in keys if k[2] == role]
        out.extend(same[start:start + batch_size] for start in range(0, len(same), batch_size))
    return out


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device | str, precision: str) -> Any:
    """Autocast to `precision` on CUDA (`--precision`); fp32 (the default, for fidelity) is plain."""
    from contextlib import nullcontext

    dtype = PRECISIONS[precision]
    if dtype is None or not str(device).startswith("cuda"):
        return nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)


class _Clips(torch.utils.data.Dataset):
    """The test clips of `keys`, decoded in DataLoader workers while the model embeds the previous batch."""

    def __init__(self, source: VideoSource, keys: list[Key], frames: int, transform: ClipTransform) -> None:
        self.source, self.keys, self.frames, self.transform = source, keys, frames, transform

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> Tensor:
        cls, vid, _ = self.keys[i]
        return self.source.load(cls, vid, self.frames, self.transform)[0]


def clip_batches(method: Method, source: VideoSource, batches: list[list[Key]], transform: ClipTransform,
                 opts: EvalOptions) -> Iterator[Tensor]:
    """The stacked clips of each batch, in order: decoding is deterministic (test indices, no random
    augmentation), so the batches, and the features, are the same for any number of workers."""
    keys = [k for batch in batches for k in batch]
    spans, start = [], 0
    for batch in batches:
        spans.append(list(range(start, start + len(batch))))
        start += len(batch)
    cuda = str(opts.device).startswith("cuda")
    loader = torch.utils.data.DataLoader(_Clips(source, keys, method.frames, transform), batch_sampler=spans,
                                         num_workers=opts.num_workers, pin_memory=cuda, collate_fn=torch.stack)
    return iter(loader)


@torch.no_grad()
def _embed_chunk(method: Method, source: VideoSource, chunk: list[Key], clips: Tensor, opts: EvalOptions) -> Features:
    clips = clips.to(opts.device, non_blocking=True)
    texts = [source.card.text_name(c) for c, _, _ in chunk] if chunk[0][2] == "support" else None
    with autocast(opts.device, opts.precision):
        feats = method.embed(clips, texts)
    return map_features(feats, lambda t: _full(t.detach().cpu()))


def _full(t: Tensor) -> Tensor:
    """Half-precision outputs of autocast as float32 (stored and compared as such); others unchanged."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def row_key(source: VideoSource, key: Key) -> str:
    """The cache row of a (video, role): the file's size and mtime guard against replaced videos."""
    cls, vid, role = key
    try:
        st = source.path(cls, vid).stat()
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        stamp = "?"
    return f"{role}|{cls}/{vid}|{stamp}"


def _rows(eps: list[Episode], logits: Tensor, labels: Tensor) -> list[dict]:
    preds = logits.argmax(-1)
    rows = []
    for i, ep in enumerate(eps):
        correct = int((preds[i] == labels[i]).sum())
        n = labels.shape[1]
        rows.append({"episode": ep.index, "query_ids": [f"{c}/{v}" for c, v, _ in ep.query_keys()],
                     "labels": labels[i].tolist(), "preds": preds[i].tolist(),
                     "logits": logits[i].float().tolist(), "n_query": n, "n_correct": correct,
                     "accuracy": correct / n})
    return rows


class ResultStore:
    """Per-episode results as parquet chunks in a folder; each chunk is written atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def chunks(self) -> list[Path]:
        return sorted(self.folder.glob("chunk-*.parquet"))

    def done(self) -> set[int]:
        out: set[int] = set()
        for path in self.chunks():
            out.update(pd.read_parquet(path, columns=["episode"])["episode"].tolist())
        return out

    def append(self, rows: list[dict]) -> None:
        if not rows:
            return
        first, last = rows[0]["episode"], rows[-1]["episode"]
        path = self.folder / f"chunk-{first:06d}-{last:06d}.parquet"
        with atomic_path(path) as tmp:  # a failed write (disk full) leaves no temporary file
            pd.DataFrame(rows, columns=RESULT_COLUMNS).to_parquet(tmp, index=False)

    def frame(self) -> pd.DataFrame:
        frames = [pd.read_parquet(p) for p in self.chunks()]
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RESULT_COLUMNS)
        return df.drop_duplicates("episode").sort_values("episode").reset_index(drop=True)


@dataclass
class EvalOptions:
    cache: bool = True
    batch_videos: int = 16
    batch_episodes: int = 500  # episodes scored per matcher call; also the chunk size on disk
    device: str = "cpu"
    num_workers: int = 0  # DataLoader workers decoding videos (results are the same for any number)
    precision: str = "fp32"  # bf16 / fp16: autocast on CUDA (features are stored as float32)
    # bytes of features gathered per matcher call: batches of big per-video features (DMGAL's maps,
    # 3 MB/video) are cut to fit, so batch_episodes stays the on-disk chunk and never the memory bound
    gather_budget: int = 256 << 20
    shard: bool = True  # under torchrun, split the work across the ranks (all of them must call evaluate)


def scoring_batch(row_bytes: int, videos_per_episode: int, budget: int) -> int:
    """Episodes per matcher call so that their gathered features stay within `budget` bytes (>= 1)."""
    return max(1, budget // max(1, row_bytes * videos_per_episode))


def _score_chunk(method: Method, store: FeatureStore, rows: dict[Key, int], eps: list[Episode],
                 device: str, text_name: Callable[[str], str], budget: int = EvalOptions.gather_budget,
                 precision: str = "fp32") -> tuple[Tensor, Tensor]:
    """Logits [E, Q, way] and labels [E, Q] of `eps`, scored in sub-batches that fit `budget`.

    The sub-batch size depends only on the feature shapes, so single-process and sharded runs cut
    the same episodes into the same matcher calls."""
    step = scoring_batch(store.row_bytes(), len(eps[0].support_keys()) + len(eps[0].query_keys()), budget)
    if len(eps) > step:
        parts = [_score_chunk(method, store, rows, eps[i:i + step], device, text_name, budget, precision)
                 for i in range(0, len(eps), step)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    s_idx, q_idx, s_lab, q_lab = [], [], [], []
    for ep in eps:
        s_keys, q_keys = episode_keys(method, ep)
        s_idx.append([rows[k] for k in s_keys])
        q_idx.append([rows[k] for k in q_keys])
        s_lab.append([lab for *_, lab in ep.support_keys()])
        q_lab.append([lab for *_, lab in ep.query_keys()])
    way = len(eps[0].classes)

    def gather(idx: list[list[int]]) -> Features:
        return map_features(store.gather(torch.tensor(idx, dtype=torch.long)), lambda t: t.to(device))

    names = [[text_name(c) for c in ep.classes] for ep in eps]
    with torch.no_grad(), autocast(device, precision):
        logits = method.score_batch(gather(q_idx), gather(s_idx), torch.tensor(s_lab, dtype=torch.long, device=device),
                                    way, class_names=names)
    return _full(logits.cpu()), torch.tensor(q_lab)


def _distinct_keys(method: Method, episodes: list[Episode]) -> list[Key]:
    """Each (video, role) the episodes need, once, in first-use order."""
    keys: dict[Key, None] = {}
    for ep in episodes:
        for part in episode_keys(method, ep):
            keys.update(dict.fromkeys(part))
    return list(keys)


def _feature_store(method: Method, source: VideoSource, cache_dir: Path | None) -> FeatureStore:
    """The persistent store of this model's embeddings (under `cache_dir`), else an in-memory one."""
    folder = cache_dir / model_fingerprint(method, clip_transform(method, source).key) if cache_dir else None
    return FeatureStore(folder)


@dataclass(frozen=True)
class _Ranks:
    """The ranks sharing one evaluation: torchrun's process group, or this process alone (world 1),
    where every collective returns its input."""

    world: int = 1
    rank: int = 0

    @classmethod
    def of(cls, shard: bool) -> _Ranks:
        return cls(dist.world_size(), dist.rank()) if shard else cls()

    @property
    def main(self) -> bool:
        return self.rank == 0

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order."""
        return dist.all_gather_object(obj) if self.world > 1 else [obj]

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        return dist.broadcast_object(obj) if self.world > 1 else obj

    def rounds(self, items: Sequence[Any]) -> Iterator[tuple[int, Sequence[Any], Any]]:
        """(first, group, mine) for consecutive groups of `world` items, item first + r being rank r's
        (mine: None when the last group has no item for this rank)."""
        for first in range(0, len(items), self.world):
            group = items[first:first + self.world]
            yield first, group, group[self.rank] if self.rank < len(group) else None


def embed_into(method: Method, source: VideoSource, keys: list[Key], store: FeatureStore, opts: EvalOptions,
               progress: Callable[[int, int], None] | None = None, ranks: _Ranks = _Ranks()) -> dict[Key, int]:
    """Embed the keys missing from `store` (on any rank); return each key's row.

    The embedding batches of one process are dealt round-robin to the ranks, so every video is
    embedded in the very batch it would be in alone; each round's features reach every rank."""
    transform = clip_transform(method, source)
    names = {k: row_key(source, k) for k in keys}
    need: set[Key] = set().union(*ranks.gather([k for k in keys if names[k] not in store]))
    batches = _plan([k for k in keys if k in need], opts.batch_videos)
    done = 0
    clips = clip_batches(method, source, [m for _, _, m in ranks.rounds(batches) if m is not None], transform, opts)
    for _, group, mine in ranks.rounds(batches):
        feats_mine = _embed_chunk(method, source, mine, next(clips), opts) if mine is not None else None
        for chunk, feats in zip(group, ranks.gather(feats_mine)):
            new = [i for i, k in enumerate(chunk) if names[k] not in store]
            if new:
                pick = torch.tensor(new, dtype=torch.long)
                store.add([names[chunk[i]] for i in new],
                          feats if len(new) == len(chunk) else map_features(feats, lambda t: t[pick]))
            done += len(chunk)
        if progress:
            progress(done, len(need))
    return {k: store.index[names[k]] for k in keys}


@dataclass
class _Sink:
    """Where scored rows go: the result store (written by rank 0 only), else memory (every rank)."""

    results: ResultStore | None
    main: bool
    rows: list[dict] = field(default_factory=list)

    def emit(self, chunk: list[dict]) -> None:
        if self.results is None:
            self.rows.extend(chunk)
        elif self.main and chunk:
            self.results.append(chunk)


def _score_cached(method: Method, source: VideoSource, chunks: list[list[Episode]], sink: _Sink, opts: EvalOptions,
                  ranks: _Ranks, cache_dir: Path | None, progress: Progress | None) -> None:
    """Embed the distinct videos once (across the ranks), then score chunk first + r on rank r and
    emit the rows in chunk order."""
    todo = [ep for chunk in chunks for ep in chunk]
    keys, store = _distinct_keys(method, todo), _feature_store(method, source, cache_dir)
    rows = embed_into(method, source, keys, store, opts,
                      (lambda d, t: progress("embedding videos", d, t)) if progress else None, ranks)
    for first, _, eps in ranks.rounds(chunks):
        mine = ([] if eps is None else
                _rows(eps, *_score_chunk(method, store, rows, eps, opts.device, source.card.text_name,
                                         opts.gather_budget, opts.precision)))
        for part in ranks.gather(mine):
            sink.emit(part)
        if progress:
            progress("scoring episodes", sum(map(len, chunks[:first + ranks.world])), len(todo))


def _score_per_episode(method: Method, source: VideoSource, chunks: list[list[Episode]], sink: _Sink,
                       opts: EvalOptions, ranks: _Ranks, cache_dir: Path | None, progress: Progress | None) -> None:
    """The reference protocol: every episode embeds its own videos; rank r takes every world-th
    episode of each chunk, and the chunk's rows are emitted in episode order."""
    total = sum(map(len, chunks))
    for n, chunk in enumerate(chunks):
        scored: list[dict] = []
        for ep in chunk[ranks.rank::ranks.world]:
            s_keys, q_keys = episode_keys(method, ep)
            store = FeatureStore()
            rows = embed_into(method, source, list(dict.fromkeys(s_keys + q_keys)), store, opts)
            scored.extend(_rows([ep], *_score_chunk(method, store, rows, [ep], opts.device, source.card.text_name,
                                                    precision=opts.precision)))
        order = {ep.index: i for i, ep in enumerate(chunk)}
        gathered = [row for part in ranks.gather(scored) for row in part]
        sink.emit(sorted(gathered, key=lambda row: order[row["episode"]]))
        if progress:
            progress("embedding and scoring episodes", sum(map(len, chunks[:n + 1])), total)


def evaluate(method: Method, source: VideoSource, episodes: EpisodeSet, results: ResultStore | None = None,
             options: EvalOptions | None = None, cache_dir: Path | None = None,
             progress: Progress | None = None) -> pd.DataFrame:
    """Score every episode of `episodes` (skipping those already in `results`); returns all results.

    With `cache_dir`, embeddings persist under `cache_dir/<model fingerprint>` and are reused by
    reruns, resumed runs and sweeps; without it they live in memory (spilling to a temp file).
    Under torchrun (and `options.shard`) every rank must call it; rank 0 writes the result chunks,
    and every rank returns all results.
    """
    opts = options or EvalOptions()
    ranks = _Ranks.of(opts.shard)
    method.eval().to(opts.device)
    done = ranks.broadcast(results.done() if results and ranks.main else set())
    todo = [ep for ep in episodes if ep.index not in done]
    chunks = [todo[start:start + opts.batch_episodes] for start in range(0, len(todo), opts.batch_episodes)]
    sink = _Sink(results, ranks.main)
    score = _score_cached if opts.cache else _score_per_episode
    if todo:
        score(method, source, chunks, sink, opts, ranks, cache_dir, progress)
    if results is None:
        return pd.DataFrame(sink.rows, columns=RESULT_COLUMNS)
    return ranks.broadcast(results.frame() if ranks.main else None)


def accuracy_summary(df: pd.DataFrame) -> dict[str, float]:
    """Mean per-episode accuracy (%), its std, and the 95% CI half-width 1.96 * std / sqrt(n)."""
    acc = df["accuracy"].to_numpy(dtype=float) * 100.0
    n = len(acc)
    std = float(acc.std(ddof=1)) if n > 1 else 0.0
    return {"accuracy": float(acc.mean()) if n else float("nan"), "accuracy_std": std,
            "ci95": 1.96 * std / np.sqrt(n) if n else float("nan"), "episodes": n}


def unique_keys(method: Method, episodes: Iterable[Episode]) -> set[Key]:
    return {k for ep in episodes for part in episode_keys(method, ep) for k in part}
