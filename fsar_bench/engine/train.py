"""The shared episodic training loop behind `Method.fit`.

Episode i of the training stream and its augmentations come from (seed, i) alone, and the torch
RNG is re-seeded from (seed, step) before every step, so a run resumed from its last checkpoint
continues exactly as the uninterrupted run would have. Model selection uses the val split only
(the test split is never read here); the selected weights are written to `final.pt`. Under
torchrun the ranks split the episode stream (`train_episodic`; docs/distributed.md).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from fsar_bench.data.source import TrainEpisodes, _seed_int
from fsar_bench.engine import distributed as dist
from fsar_bench.engine.checkpoint import Checkpointer
from fsar_bench.errors import FsarError
from fsar_bench.protocol import Method


@dataclass
class TrainConfig:
    steps: int = 100  # training episodes
    lr: float = 1e-3
    weight_decay: float = 0.0
    episodes_per_update: int = 1  # gradients of this many episodes are averaged per optimiser step
    val_every: int = 0  # validate every N steps (0: never; the last weights are kept)
    val_episodes: int = 1_000
    train_query: int = 5  # queries per class in training episodes
    checkpoint_every: int = 50
    seed: str = "0"
    device: str = "cpu"
    num_workers: int = 0


@dataclass
class TrainState:
    """What `fit` reports: the loss curve, validation history and the selected step."""

    step: int = 0
    losses: list[float] = field(default_factory=list)
    val: list[tuple[int, float]] = field(default_factory=list)
    best_step: int = -1
    best_val: float = -1.0
    seconds: float = 0.0
    resumed_from: int = 0


@dataclass
class TrainData:
    episodes: TrainEpisodes
    validate: Callable[[Method], float] | None = None  # val accuracy (%) of the current weights
    run_dir: Path | None = None  # checkpoints go here; None: no checkpoints
    log: Callable[[dict[str, float], int], None] | None = None
    progress: Callable[[int, int], None] | None = None


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _load(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


def _crossed(begin: int, end: int, every: int) -> bool:
    """Whether a multiple of `every` lies in (begin, end]: episodes begin..end-1 were just consumed."""
    return end // every > begin // every


def train_episodic(method: Method, data: TrainData, config: TrainConfig) -> TrainState:
    """Train on episodes state.step..config.steps-1 of `data.episodes`.

    Under torchrun (W ranks) the episodes are dealt round-robin, episode i to rank i % W, so
    `steps` counts episodes over all ranks and the ranks together see the single-process stream.
    Each rank back-propagates its own episodes; gradients are summed over ranks at every update,
    which averages `episodes_per_update * W` episodes (W-fold the single-process batch). Rank 0
    writes the checkpoints; validation (a sharded evaluation) runs on every rank and agrees.
    """
    main, world, rank = dist.is_main(), dist.world_size(), dist.rank()
    run_dir = data.run_dir
    final = run_dir / "final.pt" if run_dir else None
    state = TrainState()
    saved = dist.broadcast_object(_load(final) if main and final and final.exists() else None)
    saver = Checkpointer(method)
    if saved is not None:  # training finished earlier: reuse the selected weights
        saver.load(saved, final)
        state = TrainState(**{**asdict(state), **saved["state"]})
        return state

    method.to(config.device)
    optim = method.configure_optimizer(config.lr, config.weight_decay)
    ckpt = run_dir / "checkpoint.pt" if run_dir else None
    best_weights: dict[str, Any] | None = None
    saved = dist.broadcast_object(_load(ckpt) if main and ckpt and ckpt.exists() else None)
    if saved is not None:
        saver.load(saved, ckpt)
        optim.load_state_dict(saved["optim"])
        state = TrainState(**saved["state"])
        state.resumed_from = state.step
        best_path = run_dir / "best.pt"
        best_weights = _load(best_path) if main and best_path.exists() else None
    params = [p for p in method.parameters() if p.requires_grad]
    per_update = config.episodes_per_update * world  # episodes averaged per optimiser step

    loader = torch.utils.data.DataLoader(
        data.episodes, batch_size=None, sampler=range(state.step + rank, config.steps, world),
        num_workers=config.num_workers, persistent_workers=False)
    batches = iter(loader)
    start_time = time.perf_counter() - state.seconds
    method.train()
    optim.zero_grad(set_to_none=True)
    for begin in range(state.step, config.steps, world):  # episodes begin..end-1, one per rank
        end = min(begin + world, config.steps)
        step = begin + rank  # this rank's episode
        if step < end:
            batch = next(batches)
            torch.manual_seed(_seed_int(config.seed, "step", step) % (2**63))
            out = method.training_loss(batch.to(config.device))
            loss = out["loss"]
            if not torch.isfinite(loss):
                raise FsarError(f"training loss is {loss.item()} at episode {step}",
                                "lower the learning rate (--lr) or check the inputs; "
                                "re-running resumes from the last checkpoint")
            (loss / per_update).backward()
        if _crossed(begin, end, per_update) or end == config.steps:
            dist.all_reduce_gradients(params)
            optim.step()
            optim.zero_grad(set_to_none=True)
            dist.broadcast_buffers(method)
        if step < end:
            state.losses.append(float(loss.detach()))
        state.step = end
        if data.log and step < end:
            parts = {f"train_{k}": float(v.detach()) for k, v in out.items() if k != "logits" and v.dim() == 0}
            if "logits" in out:
                parts["train_acc"] = float((out["logits"].argmax(-1) == batch.query_labels).float().mean() * 100)
            data.log(parts, step)
        if data.validate and config.val_every and (_crossed(begin, end, config.val_every) or end == config.steps):
            acc = data.validate(method)  # every rank gets the same accuracy
            method.train()
            state.val.append((state.step, acc))
            if data.log:
                data.log({"val_accuracy": acc}, end - 1)
            if acc > state.best_val:
                state.best_val, state.best_step = acc, state.step
                if main:
                    best_weights = saver.weights()
                    if run_dir:
                        _atomic_save(best_weights, run_dir / "best.pt")
        state.seconds = time.perf_counter() - start_time
        if main and ckpt and (_crossed(begin, end, config.checkpoint_every) or end == config.steps):
            _atomic_save({**saver.weights(), "optim": optim.state_dict(), "state": asdict(state)}, ckpt)
        if data.progress:
            data.progress(state.step, config.steps)
    if best_weights is not None:
        saver.load(best_weights, "the best validation weights")
    dist.broadcast_module(method)  # every rank continues with rank 0's selected weights
    state.seconds = time.perf_counter() - start_time
    if main and final:
        _atomic_save({**saver.weights(), "state": asdict(state)}, final)
        for name in ("checkpoint.pt", "best.pt"):
            (run_dir / name).unlink(missing_ok=True)
    return state


def mean_tail(values: list[float], n: int = 20) -> float:
    tail = values[-n:]
    return sum(tail) / len(tail) if tail else math.nan
