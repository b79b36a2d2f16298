"""The engine's episodic training loop (`Method.fit`) against a hand-written reference loop.

The per-method "loss decreases" tests train with their own loop (tests/toy_training.py), so they
cannot notice a broken engine loop. Here a tiny deterministic method is trained twice on the same
episodes: once through `Method.fit` (the shared loop of fsar_bench/engine/train.py) and once with
the textbook zero_grad / backward / step loop written below; parameters and losses must agree.
A dropped `zero_grad` (gradients accumulate over updates), a dropped `method.train()` (a method
left in eval mode trains with its batch-norm running statistics) or a wrong gradient averaging
over `episodes_per_update` all change the weights.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from fsar_bench.engine.train import TrainConfig, TrainData
from fsar_bench.protocol import EpisodeBatch, Method

pytestmark = pytest.mark.usefixtures("one_thread")

WAY, SHOT, QUERY, FRAMES, SIZE = 3, 1, 2, 2, 4
LR = 0.05


class TinyMethod(Method):
    """Linear frame embedding + batch norm (whose output depends on the train/eval mode) + ProtoNet."""

    def __init__(self) -> None:
        super().__init__(frames=FRAMES, image_size=SIZE)
        g = torch.Generator().manual_seed(0)
        self.proj = nn.Linear(3 * SIZE * SIZE, 6)
        self.norm = nn.BatchNorm1d(6)
        with torch.no_grad():
            self.proj.weight.copy_(0.3 * torch.randn(self.proj.weight.shape, generator=g))
            self.proj.bias.copy_(0.1 * torch.randn(self.proj.bias.shape, generator=g))
            self.norm.running_mean.fill_(3.0)  # far from the batch statistics: eval mode is visible
            self.norm.running_var.fill_(9.0)
        self.feature_dim = 6
        self.set_matcher("proto")
        self.modes: list[bool] = []

    def embed(self, clips, texts=None):
        b, t = clips.shape[:2]
        return self.norm(self.proj(clips.flatten(2)).flatten(0, 1)).view(b, t, -1)

    def training_loss(self, batch):
        self.modes.append(self.training)  # the mode the engine trains in
        return super().training_loss(batch)


def _episode(i: int) -> EpisodeBatch:
    g = torch.Generator().manual_seed(100 + i)
    names = [f"class {c}" for c in range(WAY)]
    return EpisodeBatch(
        support=torch.randn(WAY * SHOT, FRAMES, 3, SIZE, SIZE, generator=g),
        support_labels=torch.arange(WAY).repeat_interleave(SHOT),
        query=torch.randn(WAY * QUERY, FRAMES, 3, SIZE, SIZE, generator=g),
        query_labels=torch.arange(WAY).repeat_interleave(QUERY),
        way=WAY, shot=SHOT, class_names=names, global_labels=torch.arange(WAY), split_class_names=names)


class _Episodes(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.items = [_episode(i) for i in range(n)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> EpisodeBatch:
        return self.items[i]


def _reference_loop(method: Method, episodes: _Episodes, steps: int, per_update: int) -> tuple[list[float], list]:
    """The textbook loop: train mode; per update, zero the gradients, back-propagate the mean loss of
    `per_update` episodes, one optimiser step. Returns the losses and the parameters after each update."""
    optim = method.configure_optimizer(LR, 0.0)
    method.train()
    losses, snapshots = [], []
    for start in range(0, steps, per_update):
        optim.zero_grad()
        for i in range(start, start + per_update):
            loss = Method.training_loss(method, episodes[i])["loss"]
            (loss / per_update).backward()
            losses.append(float(loss.detach()))
        optim.step()
        snapshots.append({k: v.detach().clone() for k, v in method.state_dict().items()})
    return losses, snapshots


def _stale_gradients(method: Method) -> None:
    """Leave gradients from an unrelated backward pass on every parameter: the loop must not use them."""
    loss = sum((p * 7.0).sum() for p in method.parameters())
    loss.backward()


@pytest.mark.parametrize("per_update", [1, 2])
def test_engine_loop_matches_reference_loop(per_update):
    steps = 4
    engine, reference = TinyMethod(), TinyMethod()
    episodes = _Episodes(steps)
    ref_losses, snapshots = _reference_loop(reference, episodes, steps, per_update)

    engine.eval()  # the engine must switch to train mode itself
    _stale_gradients(engine)
    state = engine.fit(TrainData(episodes=episodes),
                       TrainConfig(steps=steps, lr=LR, episodes_per_update=per_update, val_every=0,
                                   checkpoint_every=1000, seed="loop-test"))
    assert engine.modes == [True] * steps  # every training_loss call ran in train mode
    assert state.step == steps and len(state.losses) == steps
    assert state.losses == pytest.approx(ref_losses, rel=1e-5, abs=1e-6)
    final = engine.state_dict()
    for name, value in snapshots[-1].items():
        torch.testing.assert_close(final[name], value, rtol=1e-5, atol=1e-6, msg=name)
    # the weights really moved (a loop that never steps would fail the comparison above too)
    assert not torch.allclose(snapshots[-1]["proj.weight"], TinyMethod().proj.weight)


def test_training_resumes_train_mode_after_validation_and_keeps_the_best_weights():
    """`validate` evaluates (eval mode); the next episodes train in train mode again; the weights of
    the best validation accuracy (here the first of two validations) are the ones kept."""
    steps = 4
    engine, reference = TinyMethod(), TinyMethod()
    episodes = _Episodes(steps)
    _, snapshots = _reference_loop(reference, episodes, steps, 1)
    accuracies = iter([60.0, 40.0])  # step 2 is the best

    def validate(method: Method) -> float:
        method.eval()
        return next(accuracies)

    state = engine.fit(TrainData(episodes=episodes, validate=validate),
                       TrainConfig(steps=steps, lr=LR, val_every=2, checkpoint_every=1000, seed="loop-test"))
    assert engine.modes == [True] * steps
    assert state.val == [(2, 60.0), (4, 40.0)] and state.best_step == 2 and state.best_val == 60.0
    final = engine.state_dict()
    for name in ("proj.weight", "proj.bias", "norm.weight", "norm.bias"):
        torch.testing.assert_close(final[name], snapshots[1][name], rtol=1e-5, atol=1e-6, msg=name)
        assert not torch.allclose(final[name], snapshots[-1][name])


def test_reference_loop_is_sensitive_to_mode_and_zero_grad():
    """Guard on the guard: the two engine bugs above really change the weights of this method."""
    steps = 4
    episodes = _Episodes(steps)
    _, good = _reference_loop(TinyMethod(), episodes, steps, 1)

    evaluated = TinyMethod()
    optim = evaluated.configure_optimizer(LR, 0.0)
    evaluated.eval()
    accumulated = TinyMethod()
    optim2 = accumulated.configure_optimizer(LR, 0.0)
    accumulated.train()
    for i in range(steps):
        optim.zero_grad()
        Method.training_loss(evaluated, episodes[i])["loss"].backward()
        optim.step()
        Method.training_loss(accumulated, episodes[i])["loss"].backward()  # no zero_grad
        optim2.step()
    assert not torch.allclose(evaluated.proj.weight, good[-1]["proj.weight"], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(accumulated.proj.weight, good[-1]["proj.weight"], rtol=1e-4, atol=1e-5)
