"""ST-Adapter baseline (methods/st_adapter): the module (Eq. 15, reference conventions), the frozen ViT
runner, the protocol's episode-independence and support-order invariance, local weights,
learning on toy data and the full preset (slow)."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
import torch

from fsar_bench import create_method
from fsar_methods.st_adapter import FrozenViT, STAdapterModule
from test_dmgal import _one_thread_unless_slow, clips, n_params, train_losses  # noqa: F401  (fixture)


def test_module_matches_reference_conventions():
    a = STAdapterModule(768, 384, (14, 14))
    assert n_params(a) == 592_512  # adapters.md section 1 (instantiated reference)
    assert torch.all(a.conv.weight == 0) and torch.all(a.conv.bias == 0)
    x = torch.randn(2, 8, 1 + 14 * 14, 768)
    assert torch.equal(a(x), x)  # identity at the start


def test_module_mixes_time_not_space_and_keeps_class_token():
    a = STAdapterModule(16, 8, (3, 3))
    with torch.no_grad():
        a.conv.weight.normal_()
    x = torch.randn(1, 5, 10, 16)
    y = a(x)
    assert torch.equal(y[:, :, 0], x[:, :, 0])  # class token passes through
    x2 = x.clone()
    x2[:, 2, 1 + 4] += 1.0  # one patch of frame 2
    d = (a(x2) - y).abs().sum(-1)[0]  # [T, tokens]
    changed = {(t, p) for t, p in (d > 1e-6).nonzero().tolist()}
    assert changed == {(1, 5), (2, 5), (3, 5)}  # kernel (3, 1, 1): neighbouring frames, same patch


def test_frozen_vit_reproduces_open_clip():
    from fsar_bench.weights import open_clip_model

    clip, _ = open_clip_model("fsar-tiny-vit")
    vit = FrozenViT(clip.visual).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        t = vit.tokens(x)
        for i in range(vit.depth):
            t = vit.block(i, t)
        torch.testing.assert_close(vit.readout(t, proj=True), clip.visual(x))
    assert not any(p.requires_grad for p in vit.parameters())


def test_only_adapters_train_and_defaults():
    m = create_method("st_adapter", preset="tiny")
    assert m.position == "pre_mlp" and len(m.adapters) == m.vit.depth and m.feature_dim == m.vit.width
    assert m.matcher.reduction == "sum" and m.matcher.kshot == "prototype"
    assert all(n.startswith("adapters.") for n, p in m.named_parameters() if p.requires_grad)
    assert create_method("st_adapter", preset="tiny", adapter_layers=1).first_adapted == m.vit.depth - 1


def test_embed_is_episode_independent_and_order_invariant():
    m = create_method("st_adapter", preset="tiny").eval()
    with torch.no_grad():
        for a in m.adapters:
            a.conv.weight.normal_()
        a, b = clips(3, seed=1), clips(2, seed=2)
        torch.testing.assert_close(m.embed(torch.cat([b, a]))[2:], m.embed(a), rtol=1e-5, atol=1e-5)
        labels = torch.arange(3).repeat_interleave(2)
        support, query = m.embed(clips(6, seed=3)), m.embed(clips(2, seed=4))
        perm = torch.tensor([1, 0, 3, 2, 5, 4])
        torch.testing.assert_close(m.score(query, support[perm], labels[perm], 3), m.score(query, support, labels, 3))


def test_loads_local_clip_weights(tmp_path: Path):
    from fsar_bench.weights import open_clip_model

    clip, _ = open_clip_model("fsar-tiny-vit")
    path = tmp_path / "clip.pt"
    torch.save(clip.state_dict(), path)
    m = create_method("st_adapter", preset="tiny", weights=str(path))
    assert m.weights_source.startswith("file:")
    torch.testing.assert_close(m.vit.visual.positional_embedding, clip.visual.positional_embedding)


# toy-appearance: 1.77 -> 1.57 in 40 steps. On toy-motion (generator version 3) the frozen, randomly
# initialised tiny ViT gives near-identical Bi-MHM scores: the loss stays at ln 5 for ~80 steps.
def test_tiny_preset_learns_on_toy_data(toy_data_root):
    losses = train_losses("st_adapter", toy_data_root, 40, "toy-appearance")
    first, last = statistics.mean(losses[:10]), statistics.mean(losses[-10:])
    print(f"st_adapter on toy-appearance: mean loss first 10 steps {first:.3f}, last 10 {last:.3f}")
    assert last < first - 0.1


def test_card():
    from fsar_bench.registry import method_class

    card = method_class("st_adapter").card()
    assert card.finetune == "peft" and card.default_matcher == "bimhm" and "ST-Adapter" in card.reported_as


@pytest.mark.slow
def test_full_preset(full_forward):
    """ViT-B/16 with an adapter before the MLP of each of its 12 blocks; the forward pass of a 5-way
    1-shot episode is tests/test_all_methods.py's (the session's `full_forward`)."""
    m = create_method("st_adapter", preset="full", pretrained=None)
    assert len(m.adapters) == 12 and m.adapters[0].down.out_features == 384 and m.weights_source == "random-init"
    del m
    out = full_forward("st_adapter")
    assert out.support.shape == (5, 8, 768) and out.logits.shape == (1, 5) and torch.isfinite(out.logits).all()
