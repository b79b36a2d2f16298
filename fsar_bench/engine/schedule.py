"""Learning-rate schedules in units of optimiser updates, on `torch.optim.lr_scheduler.LambdaLR`.

The LR factor is a pure function of the update index u (`lr_factor`), so a resumed run gets the
same LR sequence as an uninterrupted one: the scheduler's state_dict holds only u (`last_epoch`)
and the base LRs (the factor function is a plain closure, which LambdaLR does not pickle).

    factor(u) = warm-up:    s + (t - s) * u / W                 for u < W  (linear from s to t; t = f(W)
                                                                            unless warmup_target_factor is set)
                multistep:  factors[k], k = #milestones <= u
                cosine:     m + (1 - m) * (1 + cos(pi * (u - W) / (T - W))) / 2, T = total_updates
                constant:   1

The public FSAR codebases count iterations (one episode per GPU) and set the LR every iteration;
`from_iterations` converts their SOLVER blocks (STEPS_ITER, STEPS, LRS, WARMUP_START_LR) into
update units. The alibaba code (HyRSM, MoLo, CLIP-FSAR `runs/train_net_few_shot.py`) computes the
schedule "epoch" as floor(i/S) + i/S instead of i/S, so its step boundaries E arrive at iteration
ceil(E/2)*S, about twice as early as the configs intend; `epoch_rule="released"` reproduces that
(what produced the published numbers), `"intended"` uses i/S (D2ST fixed the code this way).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from fsar_bench.errors import FsarError

KINDS = ("constant", "multistep", "cosine")
EPOCH_RULES = ("released", "intended")


@dataclass(frozen=True)
class ScheduleSpec:
    """An LR schedule as multiples of the base LR, indexed by optimiser update (0-based)."""

    kind: str = "constant"
    warmup_updates: int = 0
    warmup_start_factor: float = 1.0
    warmup_target_factor: float | None = None  # the factor the warm-up ramps to (None: the factor at update W)
    milestones: tuple[int, ...] = ()  # multistep: updates at which the factor changes (ascending)
    factors: tuple[float, ...] = ()  # multistep: len(milestones) + 1 factors; factors[0] before the first
    total_updates: int = 0  # cosine: the update at which the cosine reaches min_factor
    min_factor: float = 0.0  # cosine: the final factor
    note: str = field(default="", compare=False)  # how the spec was derived (for the recipe table)

    def __post_init__(self) -> None:
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        object.__setattr__(self, "factors", tuple(float(f) for f in self.factors))
        self.check()

    def check(self) -> None:
        """A one-line FsarError for an impossible schedule."""
        fix = "see docs/recipes.md for the schedule fields"
        if self.kind not in KINDS:
            raise FsarError(f"unknown LR schedule kind {self.kind!r} (known: {', '.join(KINDS)})", fix)
        if self.warmup_updates < 0 or not 0.0 <= self.warmup_start_factor:
            raise FsarError(f"bad LR warm-up ({self.warmup_updates} updates from x{self.warmup_start_factor})",
                            "warmup_updates >= 0 and warmup_start_factor >= 0")
        if self.kind == "multistep":
            if len(self.factors) != len(self.milestones) + 1:
                raise FsarError(f"multistep LR schedule has {len(self.milestones)} milestones and "
                                f"{len(self.factors)} factors", "give one factor more than milestones")
            if list(self.milestones) != sorted(set(self.milestones)) or any(m <= 0 for m in self.milestones):
                raise FsarError(f"multistep milestones {list(self.milestones)} are not ascending positive updates",
                                "list distinct update indices > 0 in ascending order")
        if self.kind == "cosine" and self.total_updates <= self.warmup_updates:
            raise FsarError(f"cosine LR schedule needs total_updates ({self.total_updates}) > warmup_updates "
                            f"({self.warmup_updates})", "set total_updates to the number of optimiser updates")

    def as_dict(self) -> dict[str, Any]:
        """Plain values (lists, not tuples) for yaml / MLflow; `from_mapping` reads it back."""
        out = {k: v for k, v in asdict(self).items() if v != ScheduleSpec.__dataclass_fields__[k].default or k == "kind"}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> ScheduleSpec:
        known = set(cls.__dataclass_fields__)
        bad = sorted(set(data) - known)
        if bad:
            raise FsarError(f"unknown LR schedule field {bad[0]!r}", f"known fields: {', '.join(sorted(known))}")
        return cls(**data)

    def describe(self) -> str:
        """One line for the recipe table, e.g. 'warm-up 500 updates from x0.2; multistep x1 | 1000: x0.1'."""
        parts = []
        if self.warmup_updates:
            target = _step_factor(self, self.warmup_updates) if self.warmup_target_factor is None \
                else self.warmup_target_factor
            parts.append(f"warm-up {self.warmup_updates} updates from x{self.warmup_start_factor:g} to x{target:g}")
        if self.kind == "multistep":
            steps = ", ".join(f"{m}: x{f:g}" for m, f in zip(self.milestones, self.factors[1:]))
            parts.append(f"multistep x{self.factors[0]:g}; {steps}")
        elif self.kind == "cosine":
            parts.append(f"cosine to x{self.min_factor:g} at update {self.total_updates}")
        else:
            parts.append("constant")
        return "; ".join(parts)


def _step_factor(spec: ScheduleSpec, u: int) -> float:
    if spec.kind == "multistep":
        return spec.factors[sum(1 for m in spec.milestones if m <= u)]
    if spec.kind == "cosine":
        span = spec.total_updates - spec.warmup_updates
        t = min(max(u - spec.warmup_updates, 0), span) / span
        return spec.min_factor + (1.0 - spec.min_factor) * (1.0 + math.cos(math.pi * t)) / 2.0
    return 1.0


def lr_factor(spec: ScheduleSpec, update: int) -> float:
    """The LR multiple at optimiser update `update` (0-based): a pure function of the index."""
    u = max(int(update), 0)
    w = spec.warmup_updates
    if u < w:
        target = _step_factor(spec, w) if spec.warmup_target_factor is None else spec.warmup_target_factor
        return spec.warmup_start_factor + (target - spec.warmup_start_factor) * u / w
    return _step_factor(spec, u)


def build_scheduler(optimizer: torch.optim.Optimizer, spec: ScheduleSpec) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR over `optimizer`'s current LRs (the base LRs). Call `.step()` after every
    `optimizer.step()`; save/load `.state_dict()` beside the optimiser's to resume.

    Build it right after the optimiser, before loading a checkpoint's optimiser state, so that the
    base LRs are the recipe's (LambdaLR records each group's `initial_lr`)."""

    def factor(update: int) -> float:  # a plain function: LambdaLR.state_dict() then stores no callable
        return lr_factor(spec, update)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _iteration_at_epoch(epoch: float, steps_iter: int, rule: str) -> int:
    """The first iteration i whose schedule epoch reaches `epoch`."""
    if rule == "intended":  # epoch = i / S
        return math.ceil(epoch * steps_iter)
    # released alibaba code: epoch = floor(i/S) + i/S; for i = kS + r that is 2k + r/S
    k = 0
    while 2 * k + (steps_iter - 1) / steps_iter < epoch:
        k += 1
    return k * steps_iter + max(0, math.ceil((epoch - 2 * k) * steps_iter))


def from_iterations(*, steps_iter: int, epochs: Sequence[float], lrs: Sequence[float], iters_per_update: int,
                    warmup_start_factor: float = 1.0, warmup_epochs: float = 1.0,
                    epoch_rule: str = "released") -> ScheduleSpec:
    """A SOLVER block of the alibaba / D2ST code (lr_policy 'steps_with_relative_lrs' + warm-up)
    in optimiser updates.

    steps_iter: STEPS_ITER (iterations per schedule epoch); epochs: SOLVER.STEPS (the first is 0);
    lrs: SOLVER.LRS (multiples of BASE_LR); iters_per_update: BATCH_SIZE_PER_TASK (optimizer.step()
    every that many iterations); warmup_start_factor: WARMUP_START_LR / BASE_LR.

    Update u is taken at iteration i = (u + 1) * iters_per_update - 1, with the LR set at that
    iteration, so a boundary at iteration b becomes update ceil((b + 1) / iters_per_update) - 1.
    Warm-up (epoch < warmup_epochs; epoch = i/S there under both rules) is linear in the update
    index from update 0; the released code is up to iters_per_update - 1 iterations ahead within
    it (less than (iters_per_update - 1) / S of the warm-up range).
    """
    if epoch_rule not in EPOCH_RULES:
        raise FsarError(f"unknown epoch rule {epoch_rule!r}", f"use one of {', '.join(EPOCH_RULES)}")
    if steps_iter <= 0 or iters_per_update <= 0:
        raise FsarError(f"steps_iter ({steps_iter}) and iters_per_update ({iters_per_update}) must be positive",
                        "copy STEPS_ITER and BATCH_SIZE_PER_TASK from the config")
    if len(epochs) != len(lrs) or not epochs or epochs[0] != 0:
        raise FsarError(f"SOLVER.STEPS {list(epochs)} and LRS {list(lrs)} do not pair up",
                        "give as many LRS as STEPS, with STEPS starting at 0")

    def to_update(iteration: int) -> int:
        return max(0, math.ceil((iteration + 1) / iters_per_update) - 1)

    milestones = [to_update(_iteration_at_epoch(e, steps_iter, epoch_rule)) for e in epochs[1:]]
    warmup = to_update(_iteration_at_epoch(warmup_epochs, steps_iter, epoch_rule)) if warmup_start_factor != 1.0 else 0
    # lr_policy.get_lr_at_epoch ramps to the policy's LR AT epoch WARMUP_EPOCHS (epoch-domain), which the
    # released rule skips (epoch jumps from (S-1)/S to 2): e.g. HyRSM HMDB51's STEPS [0, 2, ...] ramps to 1x,
    # then drops to 0.5x at once.
    target = float(lrs[max(j for j, e in enumerate(epochs) if e <= warmup_epochs)])
    note = (f"STEPS_ITER {steps_iter} iterations, STEPS {list(epochs)}, LRS {list(lrs)}, "
            f"{iters_per_update} iterations per update, epoch rule {epoch_rule}")
    return ScheduleSpec("multistep", warmup_updates=warmup, warmup_start_factor=warmup_start_factor,
                        warmup_target_factor=target if warmup else None, milestones=tuple(milestones),
                        factors=tuple(lrs), note=note)


OPTIMIZERS = ("adam", "sgd")


def build_optimizer(kind: str, template: torch.optim.Optimizer, momentum: float = 0.0) -> torch.optim.Optimizer:
    """The recipe's optimiser (`kind`) over the parameter groups of `template`, the method's own
    `configure_optimizer` result (Adam, with its per-group weight decay, e.g. none on norms).

    'adam' returns `template`; 'sgd' rebuilds the same groups (same LR and weight decay) as plain SGD,
    as DMGAL's released run_DMGAL.py trains (no momentum, no weight decay in its defaults)."""
    if kind == "adam":
        return template
    if kind != "sgd":
        raise FsarError(f"unknown optimizer {kind!r}", f"use one of {', '.join(OPTIMIZERS)}")
    groups = [{"params": g["params"], "lr": g["lr"], "weight_decay": g.get("weight_decay", 0.0)}
              for g in template.param_groups]
    return torch.optim.SGD(groups, lr=template.defaults["lr"], momentum=momentum)
