"""Efficiency profile: FLOP counting (attention included on CPU), profile_method, `fsar-bench profile`."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fsar_bench.profile import count_flops, flop_counter, profile_method


@pytest.fixture()
def profile_cli(cli):
    """The CLI runner as installed: `profile` must be mounted by fsar_bench/cli/app.py itself."""
    return cli


# -- FLOP counting -------------------------------------------------------------------------------
def test_sdpa_counted_on_cpu():
    b, h, lq, lk, d, dv = 2, 3, 7, 11, 16, 8
    q, k, v = torch.randn(b, h, lq, d), torch.randn(b, h, lk, d), torch.randn(b, h, lk, dv)
    expected = 2 * b * h * lq * lk * d + 2 * b * h * lq * lk * dv  # QK^T, then (softmax) x V
    assert count_flops(F.scaled_dot_product_attention, q, k, v) == expected
    # The reference path (explicit matmuls) counts the same.
    assert count_flops(lambda: torch.softmax(q @ k.transpose(-1, -2) * d ** -0.5, -1) @ v) == expected


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention_counted_under_no_grad(batch_first):
    b, n, e, heads = 2, 10, 32, 4
    mha = nn.MultiheadAttention(e, heads, batch_first=batch_first).eval()
    x = torch.randn(b, n, e) if batch_first else torch.randn(n, b, e)
    expected = (2 * b * n * e * 3 * e  # in-projection (q, k, v)
                + 2 * 2 * b * n * n * e  # QK^T and attention x V over all heads
                + 2 * b * n * e * e)  # out-projection
    fast = torch.backends.mha.get_fastpath_enabled()
    assert count_flops(lambda: mha(x, x, x, need_weights=False)) == expected
    assert count_flops(lambda: mha(x, x, x)) == expected  # need_weights: the bmm path
    assert torch.backends.mha.get_fastpath_enabled() == fast  # restored
    with torch.no_grad(), flop_counter() as fc:  # the context manager directly
        mha(x, x, x, need_weights=False)
    assert fc.get_total_flops() == expected


def test_transformer_encoder_layer_fast_path_counted():
    e, ff, n, b = 32, 64, 6, 3
    layer = nn.TransformerEncoderLayer(e, 4, ff, batch_first=True, dropout=0.0).eval()
    expected = 2 * b * n * (3 * e * e + e * e + 2 * e * ff) + 2 * 2 * b * n * n * e
    assert count_flops(layer, torch.randn(b, n, e)) == expected


@pytest.mark.slow
def test_resnet50_gmacs_per_frame():
    from fsar_bench.weights import timm_backbone

    model, _ = timm_backbone("resnet50")
    gmacs = count_flops(model.eval(), torch.randn(1, 3, 224, 224)) / 2 / 1e9
    assert gmacs == pytest.approx(4.1, rel=0.02)


@pytest.mark.slow
def test_clip_vit_b32_gmacs_per_frame():
    from fsar_bench.weights import open_clip_model

    model, _ = open_clip_model("ViT-B-32")
    gmacs = count_flops(model.visual.eval(), torch.randn(1, 3, 224, 224)) / 2 / 1e9
    assert gmacs == pytest.approx(4.41, rel=0.02)


# -- profile_method --------------------------------------------------------------------------------
def test_profile_protonet_tiny():
    from fsar_bench.registry import create_method

    method = create_method("protonet", "tiny", frames=4)
    method.encoder.layer4[0].conv1.weight.requires_grad_(False)  # a frozen 3x3 conv, 192 -> 96 channels
    method.train()
    res = profile_method(method, way=3, shot=2, query=1, warmup=1, repeats=3)
    frames, size = method.frames, method.image_size
    assert method.training  # mode restored
    assert res["params_total"] - res["params_trainable"] == 192 * 96 * 3 * 3 > 0
    assert res["flops_per_video"] > 0
    assert res["flops_embed_query"] == 3 * res["flops_per_video"]  # 3 queries
    assert res["flops_embed_support"] == 6 * res["flops_per_video"]  # 3 x 2 supports
    # the prototype matcher's one matrix product: 3 queries x 3 prototypes x 96 channels, 2 FLOPs per MAC
    assert res["flops_matcher"] == 2 * 3 * 3 * 96
    assert res["flops_per_episode"] == 9 * res["flops_per_video"] + 2 * 3 * 3 * 96
    assert res["gmacs_per_frame"] == pytest.approx(res["flops_per_video"] / 2 / frames / 1e9)
    # A per-frame 2D backbone: a frame at the tiny preset's size costs what the backbone alone costs.
    assert res["flops_per_video"] == frames * count_flops(method.encoder.eval(), torch.randn(1, 3, size, size))
    assert 0 < res["latency_ms_median"] <= res["latency_ms_p90"] < 60_000
    assert 10 < res["peak_memory_mb"] < 100_000
    assert res["peak_memory_source"] in {"cpu_vmhwm", "cpu_maxrss"}
    assert res["videos_per_episode"] == 9 and res["frames"] == frames and res["image_size"] == size
    assert res["device"] == "cpu" and res["torch"] == torch.__version__ and int(res["threads"]) >= 1
    assert res["cpu_model"] and res["hardware_key"].startswith("cpu:")
    assert json.loads(json.dumps(res)) == res  # serialisable as is, nothing lost


def test_profile_zero_shot_and_text_methods():
    """shot=0 scores against an empty support bank; uses_text methods get dummy class names."""
    from fsar_bench.protocol import Method
    from fsar_bench.registry import create_matcher

    seen: list = []

    class TextToy(Method):
        uses_text = True

        def __init__(self) -> None:
            super().__init__(frames=2, image_size=8)
            self.proj = nn.Linear(3 * 8 * 8, 4)
            self.feature_dim = 4

        def embed(self, clips, texts=None):
            seen.append(texts)
            return self.proj(clips.flatten(2))

        def score_batch(self, query, support, support_labels, way, *, class_names=None):
            seen.append(class_names)
            if support.shape[1] == 0:
                return query.mean(2)[..., :1].expand(-1, -1, way).contiguous()  # [E, Q, way]
            return super().score_batch(query, support, support_labels, way)

    method = TextToy()
    method.matcher = create_matcher("proto")
    res = profile_method(method, way=2, shot=1, query=1, warmup=0, repeats=1)
    assert ["class 0", "class 1"] in seen and [["class 0", "class 1"]] in seen
    per_video = 2 * 2 * 3 * 8 * 8 * 4  # 2 frames x Linear(192 -> 4), 2 FLOPs per MAC
    assert res["flops_per_video"] == per_video
    assert res["params_total"] == res["params_trainable"] == 3 * 8 * 8 * 4 + 4  # weight + bias
    # 2 supports + 2 queries, and the prototype matcher's product: 2 queries x 2 prototypes x 4 channels
    assert res["flops_per_episode"] == 4 * per_video + 2 * 2 * 2 * 4
    zs = profile_method(method, way=2, shot=0, query=1, warmup=0, repeats=1)
    assert zs["flops_embed_support"] == 0 and zs["videos_per_episode"] == 2


# -- the command ---------------------------------------------------------------------------------------
def test_profile_cli_tiny(tmp_path, profile_cli):
    out = tmp_path / "p.json"
    res = profile_cli("profile", "protonet", "--preset", "tiny", "--repeats", "1", "--warmup", "0",
                      "--frames", "2", "--output", out)
    assert res.code == 0, res.err
    assert "GMACs / frame" in res.out and "hardware" in res.out
    data = json.loads(out.read_text())
    assert data["method"] == "protonet" and data["frames"] == 2 and data["preset"] == "tiny"
    assert data["weights_source"] == "random-init"


def test_profile_cli_full_preset_without_download(tmp_path, profile_cli):
    """The full preset is profiled with pretrained off; asking for a download offline says how to avoid it."""
    out = tmp_path / "p.json"
    small = ["--set", "backbone=resnet18", "--frames", "1", "--image-size", "64"]  # full preset, smaller network
    res = profile_cli("profile", "protonet", *small, "--repeats", "1", "--warmup", "0", "--output", out)
    assert res.code == 0, res.err
    data = json.loads(out.read_text())
    assert data["preset"] == "full" and data["weights_source"] == "random-init" and data["image_size"] == 64
    assert 11e6 < data["params_total"] < 12e6  # ResNet-18 without classifier
    res = profile_cli("profile", "protonet", *small, "--set", "pretrained=true")
    assert res.code == 2
    assert "--set pretrained=false" in res.err and len(res.err.strip().splitlines()) == 1


def test_profile_cli_bad_input(profile_cli):
    res = profile_cli("profile", "protonett")
    assert res.code == 2 and "did you mean 'protonet'" in res.err
    res = profile_cli("profile", "protonet", "--preset", "tiny", "--way", "0")
    assert res.code == 2 and "--way 0" in res.err and ">= 1" in res.err and len(res.err.strip().splitlines()) == 1
