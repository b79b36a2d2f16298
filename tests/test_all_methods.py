"""Every registered method, parametrised over the live registry (as timm's tests are).

Tiny presets: build, embed a random episode, score it, take one training step. Full presets (the
papers' configurations: ResNet-50 / CLIP ViT at 224 px, 8 frames) build with random weights and
run one forward pass of a 5-way 1-shot episode: slow, but CI runs them.
"""

from __future__ import annotations

import pytest
import torch

import fsar_bench
from fsar_bench.protocol import EpisodeBatch, feature_batch_size
from fsar_bench.registry import method_class, random_init_overrides

METHODS = fsar_bench.list_methods()


def _episode(method, way=5, shot=1, query=1) -> EpisodeBatch:
    g = torch.Generator().manual_seed(0)
    shape = (method.frames, 3, method.image_size, method.image_size)
    n_s, n_q = way * shot, way * query
    names = [f"class {i}" for i in range(way)]
    extras = {}
    if "masks" in method.extra_inputs:
        extras = {"support_masks": torch.rand(n_s, *shape[:1], *shape[2:], generator=g).round(),
                  "query_masks": torch.rand(n_q, *shape[:1], *shape[2:], generator=g).round()}
    return EpisodeBatch(
        support=torch.randn(n_s, *shape, generator=g), support_labels=torch.arange(way).repeat_interleave(shot),
        query=torch.randn(n_q, *shape, generator=g), query_labels=torch.arange(way).repeat_interleave(query),
        way=way, shot=shot, class_names=names, global_labels=torch.arange(way), split_class_names=names,
        extras=extras)


def _forward(method, batch: EpisodeBatch) -> torch.Tensor:
    texts = batch.support_texts if method.uses_text else None
    support = method.embed(batch.support, texts)
    query = method.embed(batch.query)
    assert feature_batch_size(support) == batch.support.shape[0]
    return method.score(query, support, batch.support_labels, batch.way, class_names=batch.class_names)


@pytest.mark.parametrize("name", METHODS)
def test_tiny_preset_forward_and_training_step(name):
    torch.manual_seed(0)
    method = fsar_bench.create_method(name, preset="tiny", **random_init_overrides(name, "tiny"))
    assert method.card().name == name
    batch = _episode(method)
    method.eval()
    with torch.no_grad():
        logits = _forward(method, batch)
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
def test_full_preset_forward_5way_1shot(name):
    torch.manual_seed(0)
    method = fsar_bench.create_method(name, preset="full", **random_init_overrides(name, "full"))
    assert method.image_size == 224 and method.frames == 8
    method.eval()
    with torch.no_grad():
        logits = _forward(method, _episode(method))
    assert logits.shape == (5, 5) and torch.isfinite(logits).all()
