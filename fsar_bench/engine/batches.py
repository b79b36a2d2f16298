"""Training episodes as tensors: episode i of the training stream as an `EpisodeBatch`.

Episode i and its augmentations are derived from (seed, i) alone (fsar_bench.seeding), so
training is reproducible whatever the number of workers or ranks, and a resumed run sees exactly
the episodes it would have seen. `train_episodes` builds the stream for a method, after the
method's `prepare_training` hook has seen the training data (I2ST turns its mask loss off there
when the dataset has no instance masks, so no masks are requested).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from torch import Tensor

from fsar_bench.data.source import VideoSource
from fsar_bench.data.transforms import ClipTransform
from fsar_bench.episodes.sampler import Episode, EpisodeSampler, EpisodeSpec
from fsar_bench.protocol import EpisodeBatch, Method
from fsar_bench.seeding import seed_int


class TrainEpisodes(torch.utils.data.Dataset):
    """Episode i of the training stream, as an `EpisodeBatch` (map-style, so any worker count works)."""

    def __init__(self, source: VideoSource, split: str, way: int, shot: int, query: int, length: int,
                 seed: str, frames: int, transform: ClipTransform, with_masks: bool = False,
                 exclude: frozenset[str] | set[str] = frozenset()) -> None:
        self.source, self.frames, self.transform, self.seed = source, frames, transform, seed
        self.with_masks = with_masks
        by_class = {c: [v for v in vids if f"{c}/{v}" not in exclude]  # exclude: absent videos (--allow-missing)
                    for c, vids in source.card.split(split).by_class.items()}
        self.split_classes = source.card.split(split).classes
        self.class_index = {c: i for i, c in enumerate(self.split_classes)}
        self.split_names = [source.card.text_name(c) for c in self.split_classes]
        self.sampler = EpisodeSampler(by_class, EpisodeSpec(source.card.name, split, way, shot, query, length, seed))
        self.length = length

    def __len__(self) -> int:
        return self.length

    def episode(self, i: int) -> Episode:
        return self.sampler.episode(i)

    def _clips(self, keys: Sequence[tuple], role: str, rng: random.Random, extras: dict[str, Tensor]) -> Tensor:
        """The clips of `keys` [N, T, 3, S, S]; their masks go to extras['<role>_masks']."""
        pairs = [self.source.load_train(c, v, self.frames, self.transform, rng, self.with_masks) for c, v, _ in keys]
        if self.with_masks:
            extras[f"{role}_masks"] = torch.stack([m for _, m in pairs])
        return torch.stack([x for x, _ in pairs])

    def __getitem__(self, i: int) -> EpisodeBatch:
        ep = self.episode(i)
        rng = random.Random(seed_int(self.seed, "augment", i))
        extras: dict[str, Tensor] = {}
        s_keys, q_keys = ep.support_keys(), ep.query_keys()
        return EpisodeBatch(
            support=self._clips(s_keys, "support", rng, extras),
            support_labels=torch.tensor([lab for *_, lab in s_keys]),
            query=self._clips(q_keys, "query", rng, extras), query_labels=torch.tensor([lab for *_, lab in q_keys]),
            way=len(ep.classes), shot=len(ep.support[0]),
            class_names=[self.source.card.text_name(c) for c in ep.classes],
            global_labels=torch.tensor([self.class_index[c] for c in ep.classes]),
            split_class_names=self.split_names, extras=extras,
        )


def train_episodes(method: Method, source: VideoSource, way: int, shot: int, query: int, length: int, seed: str,
                   transform: ClipTransform, exclude: frozenset[str] | set[str] = frozenset()) -> TrainEpisodes:
    """The training stream of `method` on `source`'s train split, built after `method.prepare_training`;
    `exclude` ('class/id') are videos absent from a partial dataset (`--allow-missing`)."""
    method.prepare_training(source)
    return TrainEpisodes(source, "train", way, shot, query, length, seed, method.frames, transform,
                         with_masks="masks" in method.extra_inputs, exclude=exclude)
