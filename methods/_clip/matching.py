"""A per-video prototype module in front of a temporal alignment metric (MA-FSAR Eq. 13).

Features are mappings {'frames': [E, N, T, D'], 'text': [E, N, D']}: supports carry the text feature
of their class, queries carry zeros (they are embedded without text). The module (TPCM, Eqs. 9-12,
or CLIP-FSAR's temporal transformer) turns support frames + their text, and query frames alone,
into enhanced features; the metric M (OTAM by default; TRX, Bi-MHM, ... via `--matcher`) then
scores D_{q,S^m} = M(F~_q, F~_S^m) and returns logits = -distance.

`merge_shots` averages the frames and texts of the shots of a class before the module (CLIP-FSAR's
MERGE_BEFORE, notes/clip_fsar.md Sec. 3); otherwise each support video goes through the module and
the metric's own k-shot rule builds the class prototype.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor, nn

from fsar_bench.protocol import Features, Matcher, group_by_class


def metric_options(matcher_cls: type, options: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """`options` restricted to the keyword arguments `matcher_cls` accepts, overridden by `given`.

    Lets a method state its head settings once (e.g. OTAM lam = 0.5, kshot = 'prototype') and
    apply them to whichever metric is selected, without naming metrics.
    """
    params = inspect.signature(matcher_cls.__init__).parameters
    return {**{k: v for k, v in options.items() if k in params}, **given}


class PrototypeModulatedMatcher(Matcher):
    def __init__(self, module: nn.Module | None, metric: Matcher, merge_shots: bool = False) -> None:
        super().__init__()
        self.module = module
        self.metric = metric
        self.merge_shots = bool(merge_shots)

    def enhance(self, frames: Tensor, text: Tensor | None) -> Tensor:
        """[E, N, T, D] (+ [E, N, D]) -> [E, N, T, D] through the module (identity without one)."""
        if self.module is None:
            return frames
        flat_text = text.flatten(0, 1) if text is not None else None
        return self.module(frames.flatten(0, 1), flat_text).view(frames.shape)

    def score_batch(self, query: Features, support: Features, support_labels: Tensor, way: int,
                    **kwargs: Any) -> Tensor:
        if not isinstance(query, dict) or not isinstance(support, dict):
            raise TypeError("expected features {'frames': [E, N, T, D], 'text': [E, N, D]}")
        frames, text, labels = support["frames"], support["text"], support_labels
        if self.merge_shots:
            frames = group_by_class(frames, labels, way).mean(dim=2)
            text = group_by_class(text, labels, way).mean(dim=2)
            labels = torch.arange(way, device=labels.device).expand(labels.shape[0], way)
        q = self.enhance(query["frames"], None)
        s = self.enhance(frames, text)
        return self.metric.score_batch(q, s, labels, way, **kwargs)
