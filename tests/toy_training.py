"""A short episodic training loop on a toy dataset, shared by the per-method "loss decreases" tests.

The same steps as the engine's loop (training_loss, the method's own optimiser), without
checkpoints or logging, so a test can watch every step's outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def train_steps(method, dataset: str, steps: int, lr: float, *, train_query: int = 1, jitter: float = 0.0,
                root: Path | None = None, seed: str = "train/test",
                each: Callable[[dict], None] | None = None) -> list[float]:
    """Train `method` for `steps` 5-way 1-shot episodes of `dataset`; returns the loss of each step.
    `each` sees every step's `training_loss` output (for per-step assertions)."""
    from fsar_bench.config import load_config
    from fsar_bench.data.cards import get_card
    from fsar_bench.data.source import VideoSource
    from fsar_bench.engine.batches import TrainEpisodes
    from fsar_bench.engine.evaluate import clip_transform

    card = get_card(dataset)
    src = VideoSource.open(card, load_config(), root)
    method.set_dataset(card)
    data = TrainEpisodes(src, "train", 5, 1, train_query, steps, seed, method.frames,
                         clip_transform(method, src, jitter))
    optim = method.configure_optimizer(lr, 0.0)
    method.train()
    losses = []
    for i in range(steps):
        out = method.training_loss(data[i])
        optim.zero_grad()
        out["loss"].backward()
        optim.step()
        losses.append(float(out["loss"].detach()))
        if each:
            each(out)
    return losses
