"""Checkpoints store trainable weights and buffers only, and refuse other frozen weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fsar_bench
from fsar_bench.engine.checkpoint import Checkpointer, load_file
from fsar_bench.errors import FsarError


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64), nn.Linear(64, 4))
    m[0].requires_grad_(False)  # the "frozen backbone"
    return m


def test_round_trip_saves_only_trainable_and_buffers(tmp_path):
    a = _model(0)
    with torch.no_grad():
        a[2].weight.add_(1.0)
        a[1].running_mean.add_(0.5)
    torch.save(Checkpointer(a).weights(), tmp_path / "final.pt")
    saved = torch.load(tmp_path / "final.pt", weights_only=True)
    assert not any(k.startswith("0.") for k in saved["model"])
    assert {"2.weight", "1.running_mean", "1.num_batches_tracked"} <= set(saved["model"])
    b = _model(0)
    load_file(b, tmp_path / "final.pt")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka


def test_other_frozen_weights_are_refused(tmp_path):
    torch.save(Checkpointer(_model(0)).weights(), tmp_path / "final.pt")
    with pytest.raises(FsarError, match="trained on other frozen weights"):
        load_file(_model(1), tmp_path / "final.pt")


def test_full_state_dict_files_still_load(tmp_path):
    a = _model(0)
    torch.save({"model": a.state_dict()}, tmp_path / "old.pt")
    b = _model(1)
    load_file(b, tmp_path / "old.pt")
    assert torch.equal(a[0].weight, b[0].weight)
    with pytest.raises(FsarError, match="does not fit this model"):
        load_file(nn.Linear(3, 3), tmp_path / "old.pt")


def test_parameter_efficient_method_checkpoint_is_small():
    """DMGAL-Adapter (tiny): the frozen backbone is not in the checkpoint."""
    method = fsar_bench.create_method("dmgal_adapter", preset="tiny")
    frozen = sum(p.numel() for p in method.parameters() if not p.requires_grad)
    assert frozen > 0
    saved = Checkpointer(method).weights()
    stored = sum(t.numel() for t in saved["model"].values())
    buffers = sum(b.numel() for b in method.buffers())
    assert stored == sum(p.numel() for p in method.parameters() if p.requires_grad) + buffers
