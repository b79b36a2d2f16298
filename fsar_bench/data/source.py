"""A dataset card bound to a folder on disk: finds files, samples frames, loads clips.

Test clips (`VideoSource.load`) are deterministic; training clips (`VideoSource.load_train`) are
augmented from a caller's RNG, which the engine's training episodes seed per episode
(fsar_bench.engine.batches). This package imports nothing from the engine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from fsar_bench.config import BenchConfig
from fsar_bench.data import sampling
from fsar_bench.data.cards import DatasetCard, Layout
from fsar_bench.data.transforms import ClipTransform
from fsar_bench.data.video import read_frames
from fsar_bench.errors import FsarError


def resolve_root(card: DatasetCard, config: BenchConfig, root: Path | None = None, progress=None) -> Path:
    """Where the dataset's files are; toy datasets are generated there on first use."""
    if card.is_toy:
        from fsar_bench.data import toy

        target = Path(root) if root else config.data_root / card.name
        return toy.ensure(card, target, progress=progress)  # generated, or checked against its manifest
    target = Path(root) if root else config.dataset_root(card.name)
    if target is None:
        raise FsarError(f"no root folder is configured for dataset {card.name!r}",
                        f"set datasets.{card.name}.root in bench.yaml or pass --root PATH")
    if not target.is_dir():
        raise FsarError(f"dataset root {target} of {card.name!r} is not a folder",
                        f"fix datasets.{card.name}.root in bench.yaml or --root")
    return target


@dataclass
class VideoSource:
    card: DatasetCard
    root: Path
    layout: Layout
    mask_root: Path | None = None  # instance masks (docs/datasets.md#masks); toy datasets ship them

    @classmethod
    def open(cls, card: DatasetCard, config: BenchConfig, root: Path | None = None, progress=None) -> VideoSource:
        layout_override = config.dataset_layout(card.name)
        layout = Layout.from_mapping(layout_override, "bench.yaml") if layout_override else card.layout
        resolved = resolve_root(card, config, root, progress)
        masks = config.dataset_masks(card.name) or (resolved / "masks" if card.is_toy else None)
        return cls(card, resolved, layout, masks)

    def path(self, cls: str, vid: str) -> Path:
        return self.layout.path(self.root, cls, vid)

    def load_masks(self, cls: str, vid: str, indices: list[int], n_frames: int | None = None):
        """Masks [T, H, W] (float 0..1) of the frames at `indices`.

        Two layouts under the mask root: `<class>/<id>.png`, one vertical strip with the mask of
        every frame of the video stacked top to bottom; or `<class>/<id>/<frame index:05d>.png`.
        """
        import numpy as np
        from PIL import Image

        if self.mask_root is None:
            raise FsarError(f"no instance masks are configured for {self.card.name}",
                            f"set datasets.{self.card.name}.masks in bench.yaml, or turn the mask loss off")
        strip = self.mask_root / cls / f"{vid}.png"
        if strip.exists():
            with Image.open(strip) as img:
                arr = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
            n = n_frames or _frame_count(self.path(cls, vid))
            return arr.reshape(n, arr.shape[0] // n, arr.shape[1])[indices]
        out = []
        for i in indices:
            p = self.mask_root / cls / vid / f"{i:05d}.png"
            if not p.exists():
                raise FsarError(f"missing instance mask {p}", "write one mask per frame (docs/datasets.md#masks)")
            with Image.open(p) as img:
                out.append(np.asarray(img.convert("L"), dtype=np.float32) / 255.0)
        return np.stack(out)

    def load(self, cls: str, vid: str, frames: int, transform: ClipTransform,
             train: bool = False, rng: random.Random | None = None) -> tuple[Tensor, list[int]]:
        """A clip [T, 3, S, S] and the frame indices it was read at."""
        if train:
            rng = rng or random.Random()
            select = lambda n: sampling.train_indices(n, frames, rng)  # noqa: E731
        else:
            select = lambda n: sampling.test_indices(n, frames)  # noqa: E731
        raw, idx = read_frames(self.path(cls, vid), select)
        return transform(raw, train=train, rng=rng), idx

    def load_train(self, cls: str, vid: str, frames: int, transform: ClipTransform, rng: random.Random,
                   with_masks: bool = False) -> tuple[Tensor, Tensor | None]:
        """An augmented training clip [T, 3, S, S] and, `with_masks`, its instance masks [T, S, S]
        (cropped and flipped with the clip); frames and augmentations are drawn from `rng`."""
        count: dict[str, int] = {}

        def select(n: int) -> list[int]:
            count["n"] = n  # the mask strip holds one mask per frame of the video
            return sampling.train_indices(n, frames, rng)

        raw, idx = read_frames(self.path(cls, vid), select)
        masks = self.load_masks(cls, vid, idx, count["n"]) if with_masks else None
        return transform.apply(raw, masks, train=True, rng=rng)


def _frame_count(path: Path) -> int:
    from fsar_bench.data.video import num_frames

    return num_frames(path)
