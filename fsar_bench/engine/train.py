"""The shared episodic training loop behind `Method.fit`.

Episode i of the training stream and its augmentations come from (seed, i) alone, and the torch
RNG is re-seeded from (seed, step) before every step, so a run resumed from its last checkpoint
continues exactly as the uninterrupted run would have. Model selection uses the val split only
(the test split is never read here); the selected weights are written to `final.pt`.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from fsar_bench.data.source import TrainEpisodes, _seed_int
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


def train_episodic(method: Method, data: TrainData, config: TrainConfig) -> TrainState:
    run_dir = data.run_dir
    final = run_dir / "final.pt" if run_dir else None
    state = TrainState()
    if final and final.exists():  # training finished earlier: reuse the selected weights
        saved = _load(final)
        method.load_state_dict(saved["model"])
        state = TrainState(**{**asdict(state), **saved["state"]})
        return state

    method.to(config.device)
    optim = method.configure_optimizer(config.lr, config.weight_decay)
    ckpt = run_dir / "checkpoint.pt" if run_dir else None
    best_weights: dict[str, torch.Tensor] | None = None
    if ckpt and ckpt.exists():
        saved = _load(ckpt)
        method.load_state_dict(saved["model"])
        optim.load_state_dict(saved["optim"])
        state = TrainState(**saved["state"])
        state.resumed_from = state.step
        best_path = run_dir / "best.pt"
        best_weights = _load(best_path) if best_path.exists() else None

    loader = torch.utils.data.DataLoader(
        data.episodes, batch_size=None, sampler=range(state.step, config.steps),
        num_workers=config.num_workers, persistent_workers=False)
    start_time = time.perf_counter() - state.seconds
    method.train()
    optim.zero_grad(set_to_none=True)
    for step, batch in zip(range(state.step, config.steps), loader):
        torch.manual_seed(_seed_int(config.seed, "step", step) % (2**63))
        out = method.training_loss(batch.to(config.device))
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise FsarError(f"training loss is {loss.item()} at episode {step}",
                            "lower the learning rate (--lr) or check the inputs; re-running resumes from the last checkpoint")
        (loss / config.episodes_per_update).backward()
        if (step + 1) % config.episodes_per_update == 0 or step + 1 == config.steps:
            optim.step()
            optim.zero_grad(set_to_none=True)
        state.losses.append(float(loss.detach()))
        state.step = step + 1
        if data.log:
            parts = {f"train_{k}": float(v.detach()) for k, v in out.items() if k != "logits" and v.dim() == 0}
            if "logits" in out:
                parts["train_acc"] = float((out["logits"].argmax(-1) == batch.query_labels).float().mean() * 100)
            data.log(parts, step)
        if data.validate and config.val_every and (state.step % config.val_every == 0 or state.step == config.steps):
            acc = data.validate(method)
            method.train()
            state.val.append((state.step, acc))
            if data.log:
                data.log({"val_accuracy": acc}, step)
            if acc > state.best_val:
                state.best_val, state.best_step = acc, state.step
                best_weights = copy.deepcopy(method.state_dict())
                if run_dir:
                    _atomic_save(best_weights, run_dir / "best.pt")
        state.seconds = time.perf_counter() - start_time
        if ckpt and (state.step % config.checkpoint_every == 0 or state.step == config.steps):
            _atomic_save({"model": method.state_dict(), "optim": optim.state_dict(), "state": asdict(state)}, ckpt)
        if data.progress:
            data.progress(state.step, config.steps)
    if best_weights is not None:
        method.load_state_dict(best_weights)
    state.seconds = time.perf_counter() - start_time
    if final:
        _atomic_save({"model": method.state_dict(), "state": asdict(state)}, final)
        for name in ("checkpoint.pt", "best.pt"):
            (run_dir / name).unlink(missing_ok=True)
    return state


def mean_tail(values: list[float], n: int = 20) -> float:
    tail = values[-n:]
    return sum(tail) / len(tail) if tail else math.nan
