"""Task-level heads of DMGAL: the composite matchers "C-MGA + metric" (DMGAL-FT (X)) and
"last ViT block with the Cmga-Adapter + metric" (DMGAL-Adapter (X)), X = a registered metric.

Both take the per-video features `embed` returns, run the task-level module on each episode
(batched over episodes, in chunks of `episode_chunk` to bound memory), reduce to what the metric
takes, and delegate the logits to the metric built by `fsar_bench.registry.create_matcher`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from fsar_bench.protocol import Features, Matcher
from fsar_methods.dmgal.adapters import CmgaAdapter
from fsar_methods.dmgal.cmga import CrossMGA
from fsar_methods.st_adapter.vit import FrozenViT

# Metrics that compare patches ([E, N, T, P, D]) rather than frames ([E, N, T, D]).
PATCH_METRICS = frozenset({"sca"})


def _chunks(e: int, size: int) -> list[slice]:
    size = max(1, int(size))
    return [slice(i, min(i + size, e)) for i in range(0, e, size)]


class CMGAMatcher(Matcher):
    """DMGAL-FT (X): C-MGA (Eqs. 10-14) on the episode's spatial maps, then spatial pooling (frame
    features for OTAM / Bi-MHM / TRX: the release's AdaptiveAvgPool2d(1)) or patch tokens (SCA), then X.

    Input: per-video maps query [E, Q, T, D, H, W], support [E, S, T, D, H, W].
    `cmga=None` is the "w/o C-MGA" ablation (pooling + metric only).
    """

    def __init__(self, metric: Matcher, cmga: CrossMGA | None, patches: bool = False, episode_chunk: int = 8) -> None:
        super().__init__()
        self.metric = metric
        self.cmga = cmga
        self.patches = bool(patches)
        self.episode_chunk = int(episode_chunk)

    def pool(self, x: Tensor) -> Tensor:
        """[E, N, T, D, H, W] -> frames [E, N, T, D] or patches [E, N, T, H*W, D]."""
        return x.flatten(-2).transpose(-1, -2) if self.patches else x.mean(dim=(-2, -1))

    def score_batch(self, query: Features, support: Features, support_labels: Tensor, way: int,
                    **kwargs: Any) -> Tensor:
        if not isinstance(query, Tensor) or query.dim() != 6:
            raise TypeError("DMGAL-FT's matcher takes spatial maps [E, N, T, D, H, W]")
        out = []
        for sl in _chunks(query.shape[0], self.episode_chunk):
            q, s = query[sl], support[sl]
            if self.cmga is not None:
                q, s = self.cmga(q, s)
            out.append(self.metric.score_batch(self.pool(q), self.pool(s), support_labels[sl], way))
        return torch.cat(out)


class CmgaAdapterMatcher(Matcher):
    """DMGAL-Adapter (X): the frozen last ViT block with the Cmga-Adapter (Eq. 17) run on the whole
    task, then ln_post (and `proj` if asked) of each frame's class token, then X.

    Input: the tokens entering the last block, query [E, Q, T, N, D], support [E, S, T, N, D].
    The ViT is the method's own (shared by reference, not registered here: its weights are saved
    once, under the method).
    """

    def __init__(self, vit: FrozenViT, adapter: CmgaAdapter, metric: Matcher, position: str,
                 use_proj: bool = False, episode_chunk: int = 4) -> None:
        super().__init__()
        self._vit = (vit,)  # a tuple hides it from nn.Module registration
        self.adapter = adapter
        self.metric = metric
        self.position = position
        self.use_proj = bool(use_proj)
        self.episode_chunk = int(episode_chunk)

    @property
    def vit(self) -> FrozenViT:
        return self._vit[0]

    def features(self, query: Tensor, support: Tensor) -> tuple[Tensor, Tensor]:
        """Frame features after the last block: [E, Q, T, D'], [E, S, T, D']."""
        qs, ss = query.shape[:3], support.shape[:3]
        n_q = query[..., 0, 0].numel()

        def adapter(x: Tensor) -> Tensor:  # frame tokens of all videos [E*(Q+S)*T, N, D]
            q, s = self.adapter(x[:n_q].unflatten(0, qs), x[n_q:].unflatten(0, ss))
            return torch.cat([q.flatten(0, 2), s.flatten(0, 2)])

        x = torch.cat([query.flatten(0, 2), support.flatten(0, 2)])
        x = self.vit.block(self.vit.depth - 1, x, adapter, self.position)
        f = self.vit.readout(x, self.use_proj)
        return f[:n_q].unflatten(0, qs), f[n_q:].unflatten(0, ss)

    def score_batch(self, query: Features, support: Features, support_labels: Tensor, way: int,
                    **kwargs: Any) -> Tensor:
        if not isinstance(query, Tensor) or query.dim() != 5:
            raise TypeError("DMGAL-Adapter's matcher takes last-block tokens [E, N, T, tokens, D]")
        out = []
        for sl in _chunks(query.shape[0], self.episode_chunk):
            q, s = self.features(query[sl], support[sl])
            out.append(self.metric.score_batch(q, s, support_labels[sl], way))
        return torch.cat(out)
