"""The shared episodic training loop behind `Method.fit` (registered with the protocol on import).

Episode i of the training stream and its augmentations come from (seed, i) alone, and the torch
RNG is re-seeded from (seed, step) before every step, so a run resumed from its last checkpoint
continues exactly as the uninterrupted run would have. Model selection uses the val split only
(the test split is never read here); the selected weights are written to `final.pt`. Under
torchrun the ranks split the episode stream (`train_episodic`; docs/distributed.md).

The optimiser and LR schedule are the run's recipe (fsar_bench/recipes.py; engine/schedule.py): the
scheduler steps once per optimiser update and its state (the update index) is saved in
`checkpoint.pt`, so a resumed run continues the exact LR sequence.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import fsar_bench.registry  # noqa: F401  (installs the matcher lookup for methods built by hand)
from fsar_bench.engine import distributed as dist
from fsar_bench.engine.batches import TrainEpisodes
from fsar_bench.engine.checkpoint import Checkpointer
from fsar_bench.engine.schedule import ScheduleSpec, build_optimizer, build_scheduler
from fsar_bench.errors import FsarError
from fsar_bench.io import atomic_path
from fsar_bench.protocol import EpisodeBatch, Method, register_training_loop
from fsar_bench.seeding import seed_torch


@dataclass
class TrainConfig:
    steps: int = 100  # training episodes
    lr: float = 1e-3
    weight_decay: float = 0.0
    episodes_per_update: int = 1  # gradients of this many episodes (all processes) are averaged per update
    val_every: int = 0  # validate every N steps (0: never; the last weights are kept)
    val_episodes: int = 1_000
    train_query: int = 5  # queries per class in training episodes
    checkpoint_every: int = 50
    seed: str = "0"
    device: str = "cpu"
    num_workers: int = 0
    optimizer: str = "adam"  # engine/schedule.py OPTIMIZERS; 'adam' is the method's configure_optimizer
    schedule: dict[str, Any] = field(default_factory=lambda: {"kind": "constant"})  # ScheduleSpec.as_dict()


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
    log: Callable[[dict[str, float], int], None] | None = None  # metrics (incl. `lr` when it changes), step
    progress: Callable[[int, int], None] | None = None


def _atomic_save(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _load(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


def _load_on_main(path: Path | None) -> Any:
    """Rank 0's copy of the file at `path` (None when absent), on every rank."""
    return dist.broadcast_object(_load(path) if dist.is_main() and path and path.exists() else None)


def _crossed(begin: int, end: int, every: int) -> bool:
    """Whether a multiple of `every` lies in (begin, end]: episodes begin..end-1 were just consumed."""
    return end // every > begin // every


def _step_metrics(out: dict[str, Tensor], batch: EpisodeBatch) -> dict[str, float]:
    """The scalar parts of a `training_loss` output as `train_*` metrics, plus the episode's accuracy."""
    parts = {f"train_{k}": float(v.detach()) for k, v in out.items() if k != "logits" and v.dim() == 0}
    if "logits" in out:
        parts["train_acc"] = float((out["logits"].argmax(-1) == batch.query_labels).float().mean() * 100)
    return parts


class _Trainer:
    """One `train_episodic` call: the optimiser, the state, the selected weights and the files."""

    def __init__(self, method: Method, data: TrainData, config: TrainConfig) -> None:
        self.method, self.data, self.config = method, data, config
        self.main, self.world, self.rank = dist.is_main(), dist.world_size(), dist.rank()
        self.run_dir = data.run_dir
        self.saver = Checkpointer(method)
        self.state = TrainState()
        self.best_weights: dict[str, Any] | None = None
        self.optim: torch.optim.Optimizer | None = None
        self.sched: torch.optim.lr_scheduler.LambdaLR | None = None
        self.last_lr: float | None = None
        self.checkpoint_due = False
        self.start_time = 0.0

    def _path(self, name: str) -> Path | None:
        return self.run_dir / name if self.run_dir else None

    def finished(self) -> TrainState | None:
        """The state of a training that already wrote `final.pt` (its weights loaded), else None."""
        saved = _load_on_main(self._path("final.pt"))
        if saved is None:
            return None
        self.saver.load(saved, self._path("final.pt"))
        return TrainState(**{**asdict(TrainState()), **saved["state"]})

    def resume(self) -> None:
        """Build the optimiser; continue from `checkpoint.pt` (and `best.pt`) when present."""
        self.method.to(self.config.device)
        cfg = self.config
        self.optim = build_optimizer(cfg.optimizer, self.method.configure_optimizer(cfg.lr, cfg.weight_decay))
        # before the checkpoint's optimiser state: the scheduler records the recipe's base LRs
        self.sched = build_scheduler(self.optim, ScheduleSpec.from_mapping(dict(cfg.schedule)))
        saved = _load_on_main(self._path("checkpoint.pt"))
        if saved is None:
            return
        self.saver.load(saved, self._path("checkpoint.pt"))
        self.optim.load_state_dict(saved["optim"])
        if "sched" in saved:  # checkpoints written before schedules existed: a constant LR
            self.sched.load_state_dict(saved["sched"])
        self.state = TrainState(**saved["state"])
        self.state.resumed_from = self.state.step
        best = self._path("best.pt")
        self.best_weights = _load(best) if self.main and best.exists() else None

    def backward(self, batch: EpisodeBatch, step: int, per_update: int) -> dict[str, Tensor]:
        """Loss of episode `step` (torch RNG seeded from (seed, step)), back-propagated / per_update."""
        seed_torch(self.config.seed, "step", step)
        out = self.method.training_loss(batch.to(self.config.device))
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise FsarError(f"training loss is {loss.item()} at episode {step}",
                            "lower the learning rate (--lr) or check the inputs; "
                            "re-running resumes from the last checkpoint")
        (loss / per_update).backward()
        return out

    def update(self, params: list[Tensor], step: int) -> None:
        """One optimiser step on the gradients summed over ranks, then one scheduler step; rank 0's
        buffers everywhere. The LR of the update is logged (metric `lr`) whenever it changes."""
        lr = self.optim.param_groups[0]["lr"]
        if self.data.log and lr != self.last_lr:
            self.data.log({"lr": lr}, step)
        self.last_lr = lr
        dist.all_reduce_gradients(params)
        self.optim.step()
        self.sched.step()
        self.optim.zero_grad(set_to_none=True)
        dist.broadcast_buffers(self.method)

    def validate(self, end: int) -> None:
        """Validation accuracy of the current weights; the best are kept (and written to `best.pt`)."""
        acc = self.data.validate(self.method)  # every rank gets the same accuracy
        self.method.train()
        self.state.val.append((self.state.step, acc))
        if self.data.log:
            self.data.log({"val_accuracy": acc}, end - 1)
        if acc > self.state.best_val:
            self.state.best_val, self.state.best_step = acc, self.state.step
            if self.main:
                self.best_weights = self.saver.weights()
                if self.run_dir:
                    _atomic_save(self.best_weights, self.run_dir / "best.pt")

    def after_round(self, begin: int, end: int, updated: bool) -> None:
        """Validation, the checkpoint and progress once episodes begin..end-1 are consumed. A checkpoint
        falls due every `checkpoint_every` episodes and is written at the next optimiser update (`updated`),
        so it never holds half an update's gradients, which it could not restore."""
        cfg, last = self.config, end == self.config.steps
        if self.data.validate and cfg.val_every and (_crossed(begin, end, cfg.val_every) or last):
            self.validate(end)
        self.state.seconds = time.perf_counter() - self.start_time
        due = self.checkpoint_due or _crossed(begin, end, cfg.checkpoint_every) or last
        self.checkpoint_due = due and not updated
        ckpt = self._path("checkpoint.pt") if due and updated else None
        if self.main and ckpt:
            _atomic_save({**self.saver.weights(), "optim": self.optim.state_dict(), "sched": self.sched.state_dict(),
                          "state": asdict(self.state)}, ckpt)
        if self.data.progress:
            self.data.progress(self.state.step, cfg.steps)

    def run(self) -> None:
        """Episodes state.step..steps-1, episode i on rank i % world (see `train_episodic`)."""
        cfg, state, world = self.config, self.state, self.world
        params = [p for p in self.method.parameters() if p.requires_grad]
        per_update = _per_update(cfg.episodes_per_update, world)  # episodes averaged per optimiser step
        loader = torch.utils.data.DataLoader(
            self.data.episodes, batch_size=None, sampler=range(state.step + self.rank, cfg.steps, world),
            num_workers=cfg.num_workers, persistent_workers=False)
        batches = iter(loader)
        self.start_time = time.perf_counter() - state.seconds
        self.method.train()
        self.optim.zero_grad(set_to_none=True)
        for begin in range(state.step, cfg.steps, world):  # episodes begin..end-1, one per rank
            end = min(begin + world, cfg.steps)
            step = begin + self.rank  # this rank's episode
            mine = step < end
            if mine:
                batch = next(batches)
                out = self.backward(batch, step, per_update)
            updated = _crossed(begin, end, per_update) or end == cfg.steps
            if updated:
                self.update(params, end - 1)
            if mine:
                state.losses.append(float(out["loss"].detach()))
            state.step = end
            if self.data.log and mine:
                self.data.log(_step_metrics(out, batch), step)
            self.after_round(begin, end, updated)

    def finish(self) -> None:
        """Load the selected weights on every rank; write `final.pt` and drop the resume files."""
        if self.best_weights is not None:
            self.saver.load(self.best_weights, "the best validation weights")
        dist.broadcast_module(self.method)  # every rank continues with rank 0's selected weights
        self.state.seconds = time.perf_counter() - self.start_time
        final = self._path("final.pt")
        if self.main and final:
            _atomic_save({**self.saver.weights(), "state": asdict(self.state)}, final)
            for name in ("checkpoint.pt", "best.pt"):
                (self.run_dir / name).unlink(missing_ok=True)


def _per_update(total: int, world: int) -> int:
    """Episodes per optimiser update over all ranks: the recipe's total, which the ranks share (each
    back-propagates total / W), so an update and the LR milestones mean the same for any W."""
    if total % world:
        raise FsarError(f"episodes_per_update ({total}, the total per update over all processes) is not "
                        f"divisible by the {world} processes",
                        f"use --nproc dividing {total}, or set train.episodes_per_update to a multiple of {world}")
    return total


def train_episodic(method: Method, data: TrainData, config: TrainConfig) -> TrainState:
    """Train on episodes state.step..config.steps-1 of `data.episodes`.

    Under torchrun (W ranks) the episodes are dealt round-robin, episode i to rank i % W, so
    `steps` counts episodes over all ranks and the ranks together see the single-process stream.
    Each rank back-propagates its own episodes; gradients are summed over ranks at every update,
    which averages `episodes_per_update` episodes in total (episodes_per_update / W per rank, the
    single-process batch and the same number of updates; it must be divisible by W). Rank 0
    writes the checkpoints; validation (a sharded evaluation) runs on every rank and agrees.
    """
    trainer = _Trainer(method, data, config)
    done = trainer.finished()
    if done is not None:  # training finished earlier: reuse the selected weights
        return done
    trainer.resume()
    trainer.run()
    trainer.finish()
    return trainer.state


register_training_loop(train_episodic)


def mean_tail(values: list[float], n: int = 20) -> float:
    tail = values[-n:]
    return sum(tail) / len(tail) if tail else math.nan
