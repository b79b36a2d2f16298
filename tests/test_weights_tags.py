"""Pretrained weights by explicit tag (fsar_bench.weights; issue #18 section 1). No internet here:
the hub loads are checked up to the name handed to timm / open_clip, and local files are loaded."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch

from fsar_bench import weights as W
from fsar_bench.errors import FsarError
from fsar_bench.recipes import hosted_methods
from fsar_bench.registry import create_method, method_class


def test_timm_tags_are_explicit():
    assert W.timm_pretrained_name("resnet50", "tv_in1k") == "resnet50.tv_in1k"
    assert W.timm_pretrained_name("resnet50.tv_in1k") == "resnet50.tv_in1k"
    # no tag: timm's default made explicit (its 2021 recipe, not the papers' torchvision weights)
    assert W.timm_pretrained_name("resnet50") == "resnet50.a1_in1k"


@pytest.mark.parametrize("name, tag, message", [
    ("resnet50", "tv_in1kk", "unknown weights tag 'tv_in1kk' of timm model 'resnet50'; did you mean 'tv_in1k'"),
    ("resnet50.a1_in1k", "tv_in1k", "names the weights tag 'a1_in1k' but weights_tag is 'tv_in1k'"),
])
def test_bad_timm_tags_are_one_line_errors(name, tag, message):
    with pytest.raises(FsarError) as err:
        W.timm_pretrained_name(name, tag)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_tag_reaches_timm(monkeypatch):
    """pretrained=True asks timm for '<arch>.<tag>' and records 'hub:timm/<arch>.<tag>'."""
    import timm

    calls = []
    real = timm.create_model

    def fake(name, pretrained=False, **kwargs):
        calls.append((name, pretrained))
        return real("test_resnet", pretrained=False, **kwargs)  # no download

    monkeypatch.setattr(timm, "create_model", fake)
    model, source = W.timm_backbone("resnet50", pretrained=True, weights_tag="tv_in1k")
    assert calls[-1] == ("resnet50.tv_in1k", True) and source == "hub:timm/resnet50.tv_in1k"
    m = create_method("protonet", preset="full")  # the full preset names the paper's weights
    assert calls[-1] == ("resnet50.tv_in1k", True) and m.weights_source == "hub:timm/resnet50.tv_in1k"
    m = create_method("protonet", preset="full", weights_tag="a1_in1k")  # a user override
    assert calls[-1] == ("resnet50.a1_in1k", True)
    paper = W.paper_weights(method_class("protonet"), "full")
    assert W.weights_status(paper, m.weights_source) == "not the paper's weights (paper: hub:timm/resnet50.tv_in1k)"


def test_unknown_open_clip_tag_is_refused_before_any_download():
    with pytest.raises(FsarError, match="unknown weights tag 'opneai' of open_clip model 'RN50-quickgelu'"):
        W.open_clip_model("RN50-quickgelu", pretrained="opneai")


def test_local_file_wins_and_is_labelled(tmp_path: Path):
    trunk, _ = W.timm_backbone("test_resnet")
    torch.save(trunk.state_dict(), tmp_path / "trunk.pt")
    m = create_method("protonet", preset="tiny", weights=str(tmp_path / "trunk.pt"), weights_tag="r160_in1k",
                      pretrained=True)  # the file wins over the hub tag
    assert m.weights_source.startswith("file:")
    assert all(torch.equal(m.encoder.state_dict()[k], v) for k, v in trunk.state_dict().items())
    status = W.weights_status("hub:timm/resnet50.tv_in1k", m.weights_source)
    assert status.startswith("local file, not verified")


def test_weights_status():
    paper = "hub:open_clip/RN50-quickgelu/openai"
    assert W.weights_status(paper, paper) == "paper"
    assert W.weights_status(paper, "random-init") == "random-init"
    assert W.weights_status(None, paper) == "no paper weights declared"
    assert W.weights_status(paper, "hub:open_clip/RN50-quickgelu/yfcc15m").startswith("not the paper's weights")


@pytest.mark.parametrize("name", sorted(hosted_methods()))
def test_cards_name_the_weights_their_presets_load(name):
    """Every pretrained preset's card entry is the source that preset builds (checked offline)."""
    import open_clip

    cls = method_class(name)
    declared = cls.card().weights
    params = inspect.signature(cls.__init__).parameters
    for preset, values in cls.presets.items():
        hp = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty} | values
        if not hp.get("pretrained"):
            assert preset not in declared, (name, preset)
            continue
        if "backbone" in hp:  # timm
            expected = f"hub:timm/{W.timm_pretrained_name(hp['backbone'], hp.get('weights_tag'))}"
            assert hp.get("weights_tag"), f"{name} preset {preset} loads timm's default tag"
        else:  # open_clip: `pretrained` is the tag
            model = hp.get("clip_model") or hp.get("model")
            assert hp["pretrained"] in open_clip.list_pretrained_tags_by_model(model)
            expected = W.open_clip_source(model, hp["pretrained"])
        assert declared.get(preset) == expected, (name, preset)
