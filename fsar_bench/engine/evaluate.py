"""Evaluation at the cost floor: embed each distinct (video, role) once, then score episodes in batches.

Features from `Method.embed` do not depend on the episode, so a test split of ~300-3,000 videos
is embedded once instead of once per episode (10,000 x 10 for 5-way 1-shot). Role is 'support'
(embedded with its class text) or 'query' for text-conditioned methods, 'video' otherwise.
`cache=False` is the reference protocol (re-embed the videos of every episode), kept to verify
that both give the same predictions and to measure the difference.

Per-episode results are appended in chunks, each written atomically, so an interrupted
evaluation resumes where it stopped and ends with exactly the episode count.

Under torchrun the same work is split across the ranks (`_evaluate_sharded`) and gives the
single-process results exactly (docs/distributed.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from fsar_bench.data.source import VideoSource
from fsar_bench.data.transforms import ClipTransform
from fsar_bench.engine import distributed as dist
from fsar_bench.engine.cache import FeatureStore, model_fingerprint
from fsar_bench.episodes.sampler import Episode, EpisodeSet
from fsar_bench.protocol import Features, Method, feature_batch_size, map_features

Key = tuple[str, str, str]  # (class, video id, role)
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


@torch.no_grad()
def _embed_chunk(method: Method, source: VideoSource, chunk: list[Key], transform: ClipTransform,
                 device: torch.device | str) -> Features:
    clips = torch.stack([source.load(c, v, method.frames, transform)[0] for c, v, _ in chunk]).to(device)
    texts = [source.card.text_name(c) for c, _, _ in chunk] if chunk[0][2] == "support" else None
    return map_features(method.embed(clips, texts), lambda t: t.detach().cpu())


@torch.no_grad()
def embed_batches(method: Method, source: VideoSource, keys: list[Key], transform: ClipTransform,
                  batch_size: int = 16, device: torch.device | str = "cpu",
                  progress: Callable[[int, int], None] | None = None) -> Iterator[tuple[list[Key], Features]]:
    """Yield (keys, features [len(keys), ...]) batch by batch; supports and queries go in separate batches."""
    done = 0
    for chunk in _plan(keys, batch_size):
        yield chunk, _embed_chunk(method, source, chunk, transform, device)
        done += len(chunk)
        if progress:
            progress(done, len(keys))


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
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        pd.DataFrame(rows, columns=RESULT_COLUMNS).to_parquet(tmp, index=False)
        os.replace(tmp, path)

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
    # bytes of features gathered per matcher call: batches of big per-video features (DMGAL's maps,
    # 3 MB/video) are cut to fit, so batch_episodes stays the on-disk chunk and never the memory bound
    gather_budget: int = 256 << 20
    shard: bool = True  # under torchrun, split the work across the ranks (all of them must call evaluate)


def scoring_batch(row_bytes: int, videos_per_episode: int, budget: int) -> int:
    """Episodes per matcher call so that their gathered features stay within `budget` bytes (>= 1)."""
    return max(1, budget // max(1, row_bytes * videos_per_episode))


def _score_chunk(method: Method, store: FeatureStore, rows: dict[Key, int], eps: list[Episode],
                 device: str, text_name: Callable[[str], str], budget: int = EvalOptions.gather_budget
                 ) -> tuple[Tensor, Tensor]:
    """Logits [E, Q, way] and labels [E, Q] of `eps`, scored in sub-batches that fit `budget`.

    The sub-batch size depends only on the feature shapes, so single-process and sharded runs cut
    the same episodes into the same matcher calls."""
    step = scoring_batch(store.row_bytes(), len(eps[0].support_keys()) + len(eps[0].query_keys()), budget)
    if len(eps) > step:
        parts = [_score_chunk(method, store, rows, eps[i:i + step], device, text_name, budget)
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
    with torch.no_grad():
        logits = method.score_batch(gather(q_idx), gather(s_idx), torch.tensor(s_lab, dtype=torch.long, device=device),
                                    way, class_names=names)
    return logits.cpu(), torch.tensor(q_lab)


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


def embed_into(method: Method, source: VideoSource, keys: list[Key], store: FeatureStore, opts: EvalOptions,
               progress: Callable[[int, int], None] | None = None) -> dict[Key, int]:
    """Embed the keys missing from `store`; return each key's row."""
    transform = clip_transform(method, source)
    names = {k: row_key(source, k) for k in keys}
    todo = [k for k in keys if names[k] not in store]
    for chunk, feats in embed_batches(method, source, todo, transform, opts.batch_videos, opts.device, progress):
        store.add([names[k] for k in chunk], feats)
    return {k: store.index[names[k]] for k in keys}


def evaluate(method: Method, source: VideoSource, episodes: EpisodeSet, results: ResultStore | None = None,
             options: EvalOptions | None = None, cache_dir: Path | None = None,
             progress: Callable[[str, int, int], None] | None = None) -> pd.DataFrame:
    """Score every episode of `episodes` (skipping those already in `results`); returns all results.

    With `cache_dir`, embeddings persist under `cache_dir/<model fingerprint>` and are reused by
    reruns, resumed runs and sweeps; without it they live in memory (spilling to a temp file).
    """
    opts = options or EvalOptions()
    if opts.shard and dist.world_size() > 1:
        return _evaluate_sharded(method, source, episodes, results, opts, cache_dir, progress)
    method.eval().to(opts.device)
    done = results.done() if results else set()
    todo = [ep for ep in episodes if ep.index not in done]
    rows_out: list[dict] = []

    def emit(chunk: list[dict]) -> None:
        results.append(chunk) if results else rows_out.extend(chunk)

    if todo and opts.cache:
        keys, store = _distinct_keys(method, todo), _feature_store(method, source, cache_dir)
        rows = embed_into(method, source, keys, store, opts,
                          (lambda d, t: progress("embedding videos", d, t)) if progress else None)
        for start in range(0, len(todo), opts.batch_episodes):
            eps = todo[start:start + opts.batch_episodes]
            emit(_rows(eps, *_score_chunk(method, store, rows, eps, opts.device, source.card.text_name, opts.gather_budget)))
            if progress:
                progress("scoring episodes", min(start + len(eps), len(todo)), len(todo))
    elif todo:  # the reference protocol: every episode embeds its own videos
        pending: list[dict] = []
        for n, ep in enumerate(todo, 1):
            s_keys, q_keys = episode_keys(method, ep)
            store = FeatureStore()
            rows = embed_into(method, source, list(dict.fromkeys(s_keys + q_keys)), store, opts)
            pending.extend(_rows([ep], *_score_chunk(method, store, rows, [ep], opts.device, source.card.text_name)))
            if len(pending) >= opts.batch_episodes or n == len(todo):
                emit(pending)
                pending = []
            if progress:
                progress("embedding and scoring episodes", n, len(todo))
    if results:
        return results.frame()
    return pd.DataFrame(rows_out, columns=RESULT_COLUMNS)


def _embed_sharded(method: Method, source: VideoSource, keys: list[Key], store: FeatureStore, opts: EvalOptions,
                   progress: Callable[[int, int], None] | None = None) -> dict[Key, int]:
    """`embed_into` across the ranks: the single-process batches are dealt round-robin, so every video
    is embedded in the very batch it would be in alone; each round's features reach every rank."""
    world, rank = dist.world_size(), dist.rank()
    transform = clip_transform(method, source)
    names = {k: row_key(source, k) for k in keys}
    need: set[Key] = set().union(*dist.all_gather_object([k for k in keys if names[k] not in store]))
    batches = _plan([k for k in keys if k in need], opts.batch_videos)  # missing on any rank's store
    done = 0
    for first in range(0, len(batches), world):
        group = batches[first:first + world]  # batch first + r is rank r's
        mine = _embed_chunk(method, source, group[rank], transform, opts.device) if rank < len(group) else None
        for chunk, feats in zip(group, dist.all_gather_object(mine)):
            new = [i for i, k in enumerate(chunk) if names[k] not in store]
            if new:
                pick = torch.tensor(new, dtype=torch.long)
                store.add([names[chunk[i]] for i in new],
                          feats if len(new) == len(chunk) else map_features(feats, lambda t: t[pick]))
            done += len(chunk)
        if progress:
            progress(done, len(need))
    return {k: store.index[names[k]] for k in keys}


def _evaluate_sharded(method: Method, source: VideoSource, episodes: EpisodeSet, results: ResultStore | None,
                      opts: EvalOptions, cache_dir: Path | None,
                      progress: Callable[[str, int, int], None] | None) -> pd.DataFrame:
    """`evaluate` under torchrun. The distinct videos are embedded once across the ranks; chunks of
    `batch_episodes` episodes (the same chunks as single-process) are scored round-robin, and their rows
    gathered in chunk order. Rank 0 writes the result chunks; every rank returns all results."""
    world, rank, main = dist.world_size(), dist.rank(), dist.is_main()
    method.eval().to(opts.device)
    done = dist.broadcast_object(results.done() if results and main else set())
    todo = [ep for ep in episodes if ep.index not in done]
    chunks = [todo[start:start + opts.batch_episodes] for start in range(0, len(todo), opts.batch_episodes)]
    rows_out: list[dict] = []

    def emit(chunk: list[dict]) -> None:
        if results is None:
            rows_out.extend(chunk)
        elif main:
            results.append(chunk)

    text_name = source.card.text_name
    if todo and opts.cache:
        keys, store = _distinct_keys(method, todo), _feature_store(method, source, cache_dir)
        rows = _embed_sharded(method, source, keys, store, opts,
                              (lambda d, t: progress("embedding videos", d, t)) if progress else None)
        for first in range(0, len(chunks), world):
            group = chunks[first:first + world]  # chunk first + r is rank r's
            mine = (_rows(group[rank], *_score_chunk(method, store, rows, group[rank], opts.device, text_name, opts.gather_budget))
                    if rank < len(group) else [])
            for part in dist.all_gather_object(mine):
                if part:
                    emit(part)
            if progress:
                progress("scoring episodes", sum(map(len, chunks[:first + world])), len(todo))
    elif todo:  # the reference protocol, each rank taking every world-th episode of every chunk
        for n, chunk in enumerate(chunks):
            scored: list[dict] = []
            for ep in dist.shard(chunk):
                s_keys, q_keys = episode_keys(method, ep)
                store = FeatureStore()
                rows = embed_into(method, source, list(dict.fromkeys(s_keys + q_keys)), store, opts)
                scored.extend(_rows([ep], *_score_chunk(method, store, rows, [ep], opts.device, text_name)))
            order = {ep.index: i for i, ep in enumerate(chunk)}
            gathered = [row for part in dist.all_gather_object(scored) for row in part]
            emit(sorted(gathered, key=lambda row: order[row["episode"]]))
            if progress:
                progress("embedding and scoring episodes", sum(map(len, chunks[:n + 1])), len(todo))
    if results is None:
        return pd.DataFrame(rows_out, columns=RESULT_COLUMNS)
    return dist.broadcast_object(results.frame() if main else None)


def accuracy_summary(df: pd.DataFrame) -> dict[str, float]:
    """Mean per-episode accuracy (%), its std, and the 95% CI half-width 1.96 * std / sqrt(n)."""
    acc = df["accuracy"].to_numpy(dtype=float) * 100.0
    n = len(acc)
    std = float(acc.std(ddof=1)) if n > 1 else 0.0
    return {"accuracy": float(acc.mean()) if n else float("nan"), "accuracy_std": std,
            "ci95": 1.96 * std / np.sqrt(n) if n else float("nan"), "episodes": n}


def unique_keys(method: Method, episodes: Iterable[Episode]) -> set[Key]:
    return {k for ep in episodes for part in episode_keys(method, ep) for k in part}
