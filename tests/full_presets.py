"""One full-preset forward pass per method, shared by the whole test session.

A full preset (the paper's configuration: ResNet-50 / CLIP ViT at 224 px, 8 frames) costs 10-60 s per
5-way 1-shot episode on a CPU. tests/test_all_methods.py runs one per registered method; the
per-method files (test_dmgal.py, test_i2st.py, ...) assert their method-specific shapes on the
same outputs through the `full_forward` fixture (tests/conftest.py) instead of running it again.
Only the outputs are kept (a few MB per method), not the models.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

import torch

def episode(method, way: int = 5, shot: int = 1, query: int = 1, *, n_query: int | None = None):
    """A random `way`-way `shot`-shot episode at the method's frames and image size: `query` query
    videos per class, or `n_query` query videos in all (of classes 0, 1, ...)."""
    from fsar_bench.protocol import EpisodeBatch

    g = torch.Generator().manual_seed(0)
    shape = (method.frames, 3, method.image_size, method.image_size)
    n_s = way * shot
    query_labels = torch.arange(way).repeat_interleave(query) if n_query is None else torch.arange(n_query) % way
    n_q = len(query_labels)
    names = [f"class {i}" for i in range(way)]
    extras = {}
    if "masks" in method.extra_inputs:
        extras = {"support_masks": torch.rand(n_s, *shape[:1], *shape[2:], generator=g).round(),
                  "query_masks": torch.rand(n_q, *shape[:1], *shape[2:], generator=g).round()}
    return EpisodeBatch(
        support=torch.randn(n_s, *shape, generator=g), support_labels=torch.arange(way).repeat_interleave(shot),
        query=torch.randn(n_q, *shape, generator=g), query_labels=query_labels,
        way=way, shot=shot, class_names=names, global_labels=torch.arange(way), split_class_names=names,
        extras=extras)


def forward(method, batch) -> tuple[Any, Any, torch.Tensor]:
    """(support features, query features, logits [Q, way]) of one episode, as the evaluation does it."""
    from fsar_bench.protocol import feature_batch_size

    texts = batch.support_texts if method.uses_text else None
    support = method.embed(batch.support, texts)
    query = method.embed(batch.query)
    assert feature_batch_size(support) == batch.support.shape[0]
    logits = method.score(query, support, batch.support_labels, batch.way, class_names=batch.class_names)
    return support, query, logits


@dataclass(frozen=True)
class FullForward:
    """What one full-preset forward pass of a 5-way 1-shot episode (5 supports, 1 query) gave."""

    name: str
    image_size: int
    frames: int
    feature_dim: int | None
    weights_source: str
    support: Any  # the method's features of the 5 support videos (a tensor or a dict of tensors)
    query: Any
    logits: torch.Tensor  # [1, 5] (log-probabilities for the methods that fuse probabilities)


_CACHE: dict[str, FullForward] = {}


def full_forward(name: str) -> FullForward:
    """Build `name`'s full preset with random weights (no download) and run one 5-way 1-shot episode
    with one query video (6 videos of 8 frames at 224 px: what the full size costs is the backbone
    on those frames; scoring several queries is checked on the tiny presets), once per session.

    `set_dataset(toy-appearance)` is called first, as a run does before it evaluates (MA-FSAR's
    alpha, CLIP-FSAR's text-loss weight follow the dataset's modality)."""
    if name not in _CACHE:
        import fsar_bench
        from fsar_bench.data.cards import get_card
        from fsar_bench.registry import random_init_overrides

        torch.manual_seed(0)
        method = fsar_bench.create_method(name, preset="full", **random_init_overrides(name, "full")).eval()
        method.set_dataset(get_card("toy-appearance"))
        with torch.no_grad():
            support, query, logits = forward(method, episode(method, n_query=1))
        _CACHE[name] = FullForward(name, method.image_size, method.frames, getattr(method, "feature_dim", None),
                                   method.weights_source, support, query, logits)
        del method
        gc.collect()
    return _CACHE[name]
