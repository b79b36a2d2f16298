"""LR schedules (fsar_bench.engine.schedule): hand-computed curves, the alibaba epoch rule, resume."""

from __future__ import annotations

import math

import pytest
import torch

from fsar_bench.engine.schedule import ScheduleSpec, build_scheduler, from_iterations, lr_factor
from fsar_bench.errors import FsarError


def _lrs(spec: ScheduleSpec, n: int, base: float = 1.0) -> list[float]:
    """The LR used by updates 0..n-1 (read before each optimiser step, as the training loop does)."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base)
    sched = build_scheduler(opt, spec)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_multistep_with_warmup_hand_computed():
    spec = ScheduleSpec("multistep", warmup_updates=4, warmup_start_factor=0.2, milestones=(6, 8),
                        factors=(1, 0.1, 0.01))
    expected = [0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 0.1, 0.1, 0.01, 0.01]
    assert _lrs(spec, 10, base=1.0) == pytest.approx(expected)
    assert _lrs(spec, 10, base=5e-5) == pytest.approx([5e-5 * f for f in expected])


def test_cosine_hand_computed():
    spec = ScheduleSpec("cosine", warmup_updates=2, warmup_start_factor=0.0, total_updates=6, min_factor=0.1)
    # warm-up 0, 0.5; then 0.1 + 0.9 * (1 + cos(pi * k / 4)) / 2 for k = 0..4, then flat at 0.1
    cos = [0.1 + 0.9 * (1 + math.cos(math.pi * k / 4)) / 2 for k in range(5)]
    assert _lrs(spec, 8) == pytest.approx([0.0, 0.5, *cos, 0.1])


def test_constant_is_flat():
    assert _lrs(ScheduleSpec(), 5, base=3e-4) == pytest.approx([3e-4] * 5)


def test_alibaba_released_epoch_rule():
    # CLIP-FSAR SSv2-Small: STEPS_ITER 2000, STEPS [0, 4, 6], LRS [1, 0.1, 0.01], warm-up from 2e-5 of 5e-5,
    # step every 4 iterations. Released rule epoch = floor(i/S) + i/S: boundary 4 at iteration 4000
    # (update 1000), 6 at iteration 6000 (update 1500); warm-up over iterations 0..1999 (updates 0..499).
    spec = from_iterations(steps_iter=2000, epochs=[0, 4, 6], lrs=[1, 0.1, 0.01], iters_per_update=4,
                           warmup_start_factor=0.4, epoch_rule="released")
    assert (spec.warmup_updates, spec.milestones) == (500, (1000, 1500))
    assert [lr_factor(spec, u) for u in (0, 250, 500, 999, 1000, 1499, 1500, 7499)] == pytest.approx(
        [0.4, 0.7, 1.0, 1.0, 0.1, 0.1, 0.01, 0.01])
    # the intended rule (epoch = i/S) puts the boundaries at iterations 8000 and 12000
    intended = from_iterations(steps_iter=2000, epochs=[0, 4, 6], lrs=[1, 0.1, 0.01], iters_per_update=4,
                               warmup_start_factor=0.4, epoch_rule="intended")
    assert intended.milestones == (2000, 3000)


def test_released_rule_odd_boundary_and_brute_force():
    # K100: STEPS [0, 6, 9] at S = 250; brute-force the released code iteration by iteration
    s, ipu, epochs, lrs = 250, 4, [0, 6, 9], [1, 0.1, 0.01]
    spec = from_iterations(steps_iter=s, epochs=epochs, lrs=lrs, iters_per_update=ipu, epoch_rule="released")
    for u in range(0, 1250, 7):
        i = (u + 1) * ipu - 1  # the iteration at which update u is taken
        epoch = i // s + i / s
        k = max(j for j, e in enumerate(epochs) if epoch >= e)
        assert lr_factor(spec, u) == pytest.approx(lrs[k]), u


def test_resume_mid_schedule_gives_the_same_lrs(tmp_path):
    spec = ScheduleSpec("multistep", warmup_updates=3, warmup_start_factor=0.1, milestones=(5, 9),
                        factors=(1, 0.5, 0.1))
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    full = _run(model, spec, 0, 12, None, tmp_path / "full.pt")[0]

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    first, state = _run(model, spec, 0, 6, None, tmp_path / "at6.pt")
    # rebuild from scratch (a new process), load the saved states, continue
    torch.manual_seed(1)
    fresh = torch.nn.Linear(3, 1)
    fresh.load_state_dict(state["model"])
    second, _ = _run(fresh, spec, 6, 12, state, tmp_path / "end.pt")
    assert first + second == pytest.approx(full)


def _run(model, spec, begin, end, state, path):
    """Updates begin..end-1 (continuing from `state` when given); saves model/optimiser/scheduler to `path`."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = build_scheduler(opt, spec)  # before loading the optimiser state, as documented
    if state is not None:
        saved = torch.load(state["path"], weights_only=True)  # only tensors and plain values
        opt.load_state_dict(saved["optim"])
        sched.load_state_dict(saved["sched"])
    lrs = []
    for u in range(begin, end):
        lrs.append(opt.param_groups[0]["lr"])
        model(torch.full((1, 3), float(u))).sum().backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    torch.save({"optim": opt.state_dict(), "sched": sched.state_dict()}, path)
    return lrs, {"path": path, "model": model.state_dict()}


@pytest.mark.parametrize("kwargs", [
    {"kind": "linear"},
    {"kind": "multistep", "milestones": (5,), "factors": (1.0,)},
    {"kind": "multistep", "milestones": (5, 3), "factors": (1.0, 0.1, 0.01)},
    {"kind": "cosine", "warmup_updates": 10, "total_updates": 10},
])
def test_bad_schedules_are_one_line_errors(kwargs):
    with pytest.raises(FsarError) as err:
        ScheduleSpec(**kwargs)
    assert "\n" not in str(err.value)


def test_spec_round_trips_through_plain_values():
    spec = ScheduleSpec("multistep", warmup_updates=2, warmup_start_factor=0.5, milestones=(4,), factors=(1, 0.1))
    assert ScheduleSpec.from_mapping(spec.as_dict()) == spec


def test_sgd_keeps_the_methods_param_groups():
    from fsar_bench.engine.schedule import build_optimizer

    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    adam = torch.optim.Adam([{"params": [a], "weight_decay": 1e-3}, {"params": [b], "weight_decay": 0.0}], lr=0.1)
    assert build_optimizer("adam", adam) is adam
    sgd = build_optimizer("sgd", adam)
    assert isinstance(sgd, torch.optim.SGD)
    assert [(g["params"][0] is p, g["lr"], g["weight_decay"]) for g, p in zip(sgd.param_groups, (a, b))] == [
        (True, 0.1, 1e-3), (True, 0.1, 0.0)]
    b.grad = torch.ones(2)
    sgd.step()  # plain SGD: b <- b - lr * grad
    assert torch.allclose(b.detach(), torch.full((2,), 0.9))
    with pytest.raises(FsarError, match="unknown optimizer 'adamw'"):
        build_optimizer("adamw", adam)


def _alibaba_lr_factor(i: int, s: int, epochs: list, lrs: list, start: float, rule: str) -> float:
    """The LR multiple the alibaba / D2ST code sets at iteration i (models/utils/lr_policy.py
    get_lr_at_epoch with steps_with_relative_lrs, WARMUP_EPOCHS 1, MAX_EPOCH 10), written out here."""
    epoch = (i // s + i / s) if rule == "released" else i / s

    def policy(e: float) -> float:
        steps = [*epochs, 10]
        for ind, step in enumerate(steps):  # noqa: B007  (the released loop: past the end, ind stays last)
            if e < step:
                break
        return lrs[ind - 1]

    if epoch < 1:
        return epoch * (policy(1) - start) + start
    return policy(epoch)


def _table_schedules():
    """Every SOLVER block written in the hosted methods' recipe tables."""
    from fsar_bench.recipes import hosted_methods, method_table

    out = []
    for name, cls in sorted(hosted_methods().items()):
        table = method_table(cls)
        for ds, entries in (table.datasets.items() if table else []):
            raw = entries.get("schedule")
            if raw is not None and raw.value.get("kind") == "iterations":
                out.append(pytest.param(dict(raw.value), id=f"{name}-{ds}"))
    return out


@pytest.mark.parametrize("raw", _table_schedules())
def test_table_schedules_match_the_released_code_at_every_update(raw):
    raw.pop("kind")
    spec = from_iterations(**raw)
    s, ipu = raw["steps_iter"], raw["iters_per_update"]
    start, rule = raw["warmup_start_factor"], raw["epoch_rule"]
    for u in range(0, 12 * s // ipu):  # past MAX_EPOCH under either rule
        i = (u + 1) * ipu - 1  # the iteration whose LR update u uses
        ours, theirs = lr_factor(spec, u), _alibaba_lr_factor(i, s, raw["epochs"], raw["lrs"], start, rule)
        # in the warm-up, ours counts from update 0: at most ipu - 1 iterations behind
        tol = (ipu - 1) / s * abs(1 - start) + 1e-12 if u < spec.warmup_updates else 1e-12
        assert abs(ours - theirs) <= tol, (u, ours, theirs)


# -- the schedule in the shared training loop (engine/train.py) ----------------------------------------

class _Stop(Exception):
    """Stands for a killed process: raised from the progress callback after the round's checkpoint."""


def _fit(run_dir, stop_at: int | None = None) -> tuple[dict, dict[int, float]]:
    """Train the tiny method of test_train_loop for 14 episodes, 2 per update (7 updates): warm-up over
    3 updates from x0.1, then x1, then x0.1 from update 5; a checkpoint falls due every 3 episodes
    (written at the next update). Returns the weights and the `lr` metrics logged (step -> lr)."""
    from test_train_loop import TinyMethod, _Episodes

    from fsar_bench.engine.train import TrainConfig, TrainData, train_episodic

    spec = ScheduleSpec("multistep", warmup_updates=3, warmup_start_factor=0.1, milestones=(5,), factors=(1, 0.1))
    cfg = TrainConfig(steps=14, lr=0.05, episodes_per_update=2, checkpoint_every=3, val_every=0,
                      schedule=spec.as_dict())
    lrs: dict[int, float] = {}

    def log(metrics: dict, step: int) -> None:
        if "lr" in metrics:
            lrs[step] = metrics["lr"]

    def progress(done: int, total: int) -> None:
        if done == stop_at:
            raise _Stop

    method = TinyMethod()
    try:
        train_episodic(method, TrainData(_Episodes(14), run_dir=run_dir, log=log, progress=progress), cfg)
    except _Stop:
        pass
    return {k: v.detach().clone() for k, v in method.state_dict().items()}, lrs


def _per_update(lrs: dict[int, float], steps: int = 14, per_update: int = 2) -> list[float]:
    """The LR of every update from the `lr` metrics, which are logged when the LR changes (update u is
    logged at its last episode, step 2u + 1)."""
    out, current = [], None
    for u in range(steps // per_update):
        current = lrs.get(u * per_update + per_update - 1, current)
        out.append(current)
    return out


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("stop_at", [4, 8])  # checkpoints at update 2 (inside the warm-up) and 3 (before x0.1)
def test_training_killed_mid_schedule_resumes_the_exact_lrs_and_weights(tmp_path, stop_at):
    whole, whole_lrs = _fit(tmp_path / "whole")
    expected = [0.05 * lr_factor(ScheduleSpec("multistep", warmup_updates=3, warmup_start_factor=0.1,
                                              milestones=(5,), factors=(1, 0.1)), u) for u in range(7)]
    assert _per_update(whole_lrs) == pytest.approx(expected)
    assert expected[0] < expected[1] < expected[3] and expected[5] < expected[4]  # warm-up, then a step

    _, first = _fit(tmp_path / "cut", stop_at=stop_at)
    saved = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    checkpoint_step = {4: 4, 8: 6}[stop_at]  # due at 3 / 6 episodes, written at the update ending there
    assert saved["state"]["step"] == checkpoint_step and saved["sched"]["last_epoch"] == checkpoint_step // 2
    resumed, second = _fit(tmp_path / "cut")
    assert not (tmp_path / "cut" / "checkpoint.pt").exists()  # finished
    assert min(second) == checkpoint_step + 1  # the resumed run started after the checkpoint
    merged = {**{k: v for k, v in first.items() if k < checkpoint_step}, **second}
    assert _per_update(merged) == _per_update(whole_lrs)
    for name, value in whole.items():
        assert torch.equal(resumed[name], value), name
