"""Evaluation at the cost floor: embed each distinct (video, role) once, then score episodes in batches.

Features from `Method.embed` do not depend on the episode, so a test split of ~300-3,000 videos
is embedded once instead of once per episode (10,000 x 10 for 5-way 1-shot). Role is 'support'
(embedded with its class text) or 'query' for text-conditioned methods, 'video' otherwise.
`cache=False` is the reference protocol (re-embed the videos of every episode), kept to verify
that both give the same predictions and to measure the difference.

Per-episode results are appended in chunks, each written atomically, so an interrupted
evaluation resumes where it stopped and ends with exactly the episode count.
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


@torch.no_grad()
def embed_batches(method: Method, source: VideoSource, keys: list[Key], transform: ClipTransform,
                  batch_size: int = 16, device: torch.device | str = "cpu",
                  progress: Callable[[int, int], None] | None = None) -> Iterator[tuple[list[Key], Features]]:
    """Yield (keys, features [len(keys), ...]) batch by batch; supports and queries go in separate batches."""
    done = 0
    for role in dict.fromkeys(k[2] for k in keys):
        same = [k for k in keys if k[2] == role]
        for start in range(0, len(same), batch_size):
            chunk = same[start:start + batch_size]
            clips = torch.stack([source.load(c, v, method.frames, transform)[0] for c, v, _ in chunk]).to(device)
            texts = [source.card.text_name(c) for c, _, _ in chunk] if role == "support" else None
            yield chunk, map_features(method.embed(clips, texts), lambda t: t.detach().cpu())
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


def _score_chunk(method: Method, store: FeatureStore, rows: dict[Key, int], eps: list[Episode],
                 device: str, text_name: Callable[[str], str]) -> tuple[Tensor, Tensor]:
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
    method.eval().to(opts.device)
    done = results.done() if results else set()
    todo = [ep for ep in episodes if ep.index not in done]
    rows_out: list[dict] = []

    def emit(chunk: list[dict]) -> None:
        results.append(chunk) if results else rows_out.extend(chunk)

    if todo and opts.cache:
        keys: dict[Key, None] = {}
        for ep in todo:
            for part in episode_keys(method, ep):
                keys.update(dict.fromkeys(part))
        folder = cache_dir / model_fingerprint(method, clip_transform(method, source).key) if cache_dir else None
        store = FeatureStore(folder)
        rows = embed_into(method, source, list(keys), store, opts,
                          (lambda d, t: progress("embedding videos", d, t)) if progress else None)
        for start in range(0, len(todo), opts.batch_episodes):
            eps = todo[start:start + opts.batch_episodes]
            emit(_rows(eps, *_score_chunk(method, store, rows, eps, opts.device, source.card.text_name)))
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


def accuracy_summary(df: pd.DataFrame) -> dict[str, float]:
    """Mean per-episode accuracy (%), its std, and the 95% CI half-width 1.96 * std / sqrt(n)."""
    acc = df["accuracy"].to_numpy(dtype=float) * 100.0
    n = len(acc)
    std = float(acc.std(ddof=1)) if n > 1 else 0.0
    return {"accuracy": float(acc.mean()) if n else float("nan"), "accuracy_std": std,
            "ci95": 1.96 * std / np.sqrt(n) if n else float("nan"), "episodes": n}


def unique_keys(method: Method, episodes: Iterable[Episode]) -> set[Key]:
    return {k for ep in episodes for part in episode_keys(method, ep) for k in part}
