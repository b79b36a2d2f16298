"""Every registered method, parametrised over the live registry (as timm's tests are).

Tiny presets: build, embed a random episode, score it, take one training step. Full presets (the
papers' configurations: ResNet-50 / CLIP ViT at 224 px, 8 frames) build with random weights and
run one forward pass of a 5-way 1-shot episode: slow, but CI runs them. That forward pass is shared
with the per-method test files through the session's `full_forward` fixture.
"""

from __future__ import annotations

import pytest
import torch

import fsar_bench
import full_presets
from fsar_bench.registry import method_class, random_init_overrides

METHODS = fsar_bench.list_methods()


@pytest.mark.parametrize("name", METHODS)
def test_tiny_preset_forward_and_training_step(name):
    torch.manual_seed(0)
    method = fsar_bench.create_method(name, preset="tiny", **random_init_overrides(name, "tiny"))
    assert method.card().name == name
    batch = full_presets.episode(method)
    method.eval()
    with torch.no_grad():
        _, _, logits = full_presets.forward(method, batch)
    assert logits.shape == (5, 5) and torch.isfinite(logits).all()
    if method_class(name).train_presets.get("tiny", {}).get("steps", 1) == 0:
        return  # zero-shot methods do not train
    method.train()
    opt = method.configure_optimizer(1e-3)
    out = method.training_loss(batch)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    grads = [p.grad for p in method.parameters() if p.requires_grad]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)
    opt.step()


@pytest.mark.slow
@pytest.mark.parametrize("name", METHODS)
def test_full_preset_forward_5way_1shot(name, full_forward):
    """The forward pass is computed once per session (tests/full_presets.py); the per-method files
    check their method's feature shapes on the same outputs."""
    out = full_forward(name)
    assert out.image_size == 224 and out.frames == 8 and out.weights_source == "random-init"
    assert out.logits.shape == (1, 5) and torch.isfinite(out.logits).all()
