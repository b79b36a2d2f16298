"""CLIP baselines (fsar_methods.clip_baselines): AIM (OTAM), CLIP-FSAR, zero-shot CLIP."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import fsar_bench
from fsar_bench.data.cards import get_card
from fsar_bench.protocol import EpisodeBatch
from fsar_bench.weights import open_clip_model
from fsar_methods.clip_baselines.aim import AIMViT
from fsar_methods.clip_baselines.clip_fsar import TemporalTextTransformer
from fsar_methods._clip.backbone import FrameEncoder, load_clip

BASELINES = ("aim", "clip_fsar", "clip_zeroshot")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models run single-threaded


def tiny(name, **kw):
    torch.manual_seed(0)
    return fsar_bench.create_method(name, preset="tiny", **kw)


def clips(n, seed=0, size=32):
    return torch.randn(n, 8, 3, size, size, generator=torch.Generator().manual_seed(seed))


def episode(way=5, shot=1, size=32) -> EpisodeBatch:
    names = [f"action {i}" for i in range(way)]
    return EpisodeBatch(
        support=clips(way * shot, 1, size), support_labels=torch.arange(way).repeat_interleave(shot),
        query=clips(way, 2, size), query_labels=torch.arange(way), way=way, shot=shot, class_names=names,
        global_labels=torch.arange(way), split_class_names=names)


# -- AIM ---------------------------------------------------------------------------------------
def test_aim_at_init_is_frozen_clip_and_only_adapters_train():
    torch.manual_seed(0)
    visual, _, _ = load_clip("fsar-tiny-vit")
    plain = visual.eval()
    aim = AIMViT(visual, frames=8).eval()
    x = clips(2)
    with torch.no_grad():
        ref = plain.ln_post(_cls_tokens(plain, x.flatten(0, 1))).view(2, 8, -1)
        torch.testing.assert_close(aim(x), ref)  # zero-init T/MLP adapters, identity S adapter, zero temporal emb.
    m = tiny("aim")
    names = {n for n, p in m.named_parameters() if p.requires_grad}
    assert names and all("layers." in n or "temporal_embedding" in n or "ln_post" in n for n in names)
    layer = m.visual.layers[0]
    assert not layer.t_adapter.skip and layer.s_adapter.skip and not layer.mlp_adapter.skip and layer.scale == 0.5
    assert m.card().default_matcher == m.default_matcher == "otam" and m.matcher.lam == 0.5


def _cls_tokens(vit, images):
    x = vit._embeds(images)
    return vit.transformer(x)[:, 0]


def test_aim_temporal_attention_mixes_frames():
    m = tiny("aim").eval()
    for layer in m.visual.layers:
        torch.nn.init.normal_(layer.t_adapter.fc_up.weight, std=0.1)
    x = clips(1)
    y = x.clone()
    y[:, 7] = torch.randn_like(y[:, 7])  # change the last frame only
    with torch.no_grad():
        a, b = m.embed(x), m.embed(y)
    assert not torch.allclose(a[:, 0], b[:, 0])  # frame 0 sees frame 7 through the temporal adapter


# -- CLIP-FSAR -----------------------------------------------------------------------------------
def test_clip_fsar_transformer_size_and_text_stacking():
    # notes/clip_fsar.md Sec. 3: 3,149,824 parameters at mid_dim 512, 8,394,752 at 1024
    assert sum(p.numel() for p in TemporalTextTransformer(512).parameters()) == 3_149_824
    assert sum(p.numel() for p in TemporalTextTransformer(1024).parameters()) == 8_394_752
    torch.manual_seed(0)
    t = TemporalTextTransformer(32, heads=4, ffn_dim=64).eval()
    frames, text = torch.randn(2, 8, 32), torch.randn(2, 32)
    layer = t.layers[0]
    seq = torch.cat([frames, text[:, None]], 1)
    with torch.no_grad():
        torch.testing.assert_close(t(frames, text), layer(seq, seq)[:, :8])  # [frames; text] -> first 8 outputs
        torch.testing.assert_close(t(frames), layer(frames, frames))


def test_clip_fsar_merges_shots_before_the_transformer():
    m = tiny("clip_fsar").eval()
    b5 = episode(shot=5)
    with torch.no_grad():
        s = m.embed(b5.support, b5.support_texts)
        q = m.embed(b5.query)
        five = m.score(q, s, b5.support_labels, 5)
        merged = {k: v.view(5, 5, *v.shape[1:]).mean(1) for k, v in s.items()}
        one = m.score(q, merged, torch.arange(5), 5)
    torch.testing.assert_close(five, one, rtol=1e-5, atol=1e-5)


def test_clip_fsar_fine_tunes_visual_and_losses():
    m = tiny("clip_fsar")
    assert all(p.requires_grad for p in m.visual.parameters())
    assert not any(p.requires_grad for p in m.text.parameters()) and m.text.templates == ("a photo of {}",)
    m.set_dataset(get_card("toy-motion"))
    assert m.text_loss_weight == 3.0
    m.set_dataset(get_card("toy-appearance"))
    assert m.text_loss_weight == 1.5
    m.train()
    out = m.training_loss(episode())
    torch.testing.assert_close(out["loss"].detach(), out["ce"] + 1.5 * out["text_ce"])
    assert m.matcher.metric.lam == 0.5 and m.matcher.merge_shots


# -- zero-shot CLIP -------------------------------------------------------------------------------
def test_zeroshot_scores_queries_against_class_texts():
    m = tiny("clip_zeroshot").eval()
    assert m.parameter_counts()["params_trainable"] == 0
    b = episode()
    with torch.no_grad():
        q = m.embed(b.query)
        empty = {k: v[:0] for k, v in m.embed(b.support[:1], ["x"]).items()}
        logits = m.score(q, empty, torch.zeros(0, dtype=torch.long), 5, class_names=b.class_names)  # shot 0
        text = m.text(b.class_names)
        ref = m.text.logit_scale * F.normalize(q["frames"].mean(1), dim=-1) @ F.normalize(text, dim=-1).T
        torch.testing.assert_close(logits, ref)
        # with supports and no class names, the texts come from the supports
        s = m.embed(b.support, b.support_texts)
        torch.testing.assert_close(m.score(q, s, b.support_labels, 5), ref)


def test_zeroshot_cli_shot0(workdir, cli):
    res = cli("run", "clip_zeroshot", "--dataset", "toy-motion", "--shot", "0", "--episodes", "30")
    assert res.code == 0, res.err
    import json

    summary = json.loads(next(workdir.glob("fsar-runs/clip_zeroshot-toy-motion-5w0s-*/summary.json")).read_text())
    assert summary["episodes"] == 30 and summary["shot"] == 0 and summary["train_steps"] == 0


# -- all three ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BASELINES)
def test_embed_is_episode_independent(name):
    m = tiny(name).eval()
    a, others = clips(1, 5), clips(3, 6)
    with torch.no_grad():
        for texts in ((None, ["x"]) if m.uses_text else (None,)):
            alone = m.embed(a, texts)
            batch = m.embed(torch.cat([others[:2], a, others[2:]]), None if texts is None else ["y", "z", "x", "w"])
            for k, v in (alone.items() if isinstance(alone, dict) else [("", alone)]):
                got = batch[k] if k else batch
                torch.testing.assert_close(got[2:3], v, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", BASELINES)
def test_clip_weights_from_local_file(name, tmp_path):
    torch.manual_seed(7)
    model, _ = open_clip_model("fsar-tiny-vit")
    path = tmp_path / "clip.pt"
    torch.save(model.state_dict(), path)
    m = fsar_bench.create_method(name, preset="tiny", weights=str(path))
    assert m.weights_source.startswith("file:")
    vit = m.visual.vit if hasattr(m.visual, "vit") else m.visual.visual
    torch.testing.assert_close(vit.conv1.weight, model.visual.conv1.weight)


@pytest.mark.parametrize("name", ["aim", "clip_fsar"])
def test_tiny_trains_on_toy_data_and_loss_decreases(name, toy_data_root, workdir):
    from toy_training import train_steps

    m = tiny(name)
    curve = train_steps(m, "toy-appearance", 40, m.train_presets["tiny"]["lr"], train_query=2, jitter=0.2)
    first, last = sum(curve[:10]) / 10, sum(curve[-10:]) / 10
    assert last < first, curve


# -- full presets ----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name,dim,visual", [("aim", 768, "ViT-B/32"), ("clip_fsar", 1024, "RN50"),
                                             ("clip_zeroshot", 512, "ViT-B/32")])
def test_full_preset_forward_5way_1shot(name, dim, visual, full_forward):
    """Construction checks here; the forward pass of a 5-way 1-shot episode is tests/test_all_methods.py's,
    shared through the session's `full_forward` fixture."""
    out = full_forward(name)
    assert out.image_size == 224 and out.frames == 8 and out.feature_dim == dim and out.weights_source == "random-init"
    assert out.logits.shape == (1, 5) and torch.isfinite(out.logits).all()
    torch.manual_seed(0)
    m = fsar_bench.create_method(name, preset="full", pretrained=None)  # construction only
    assert m.image_size == 224 and m.frames == 8 and m.feature_dim == dim and m.weights_source == "random-init"
    assert visual.replace("/", "-") in m.hparams["clip_model"].replace("/", "-")
    counts = m.parameter_counts()
    if name == "aim":  # 36 adapters of 295,872 + temporal embedding + ln_post on ViT-B/32
        assert counts["params_trainable"] == 36 * 295_872 + 8 * 768 + 2 * 768
    if name == "clip_fsar":  # the whole visual encoder + the transformer + s
        assert isinstance(m.visual, FrameEncoder)
        assert counts["params_trainable"] == sum(p.numel() for p in m.visual.parameters()) + 8_394_752 + 1


# -- cards ----------------------------------------------------------------------------------------
CARD_KEYS = {"paper", "backbone", "pretraining", "finetune", "text_at_test", "default_matcher", "reported_as", "notes"}


@pytest.mark.parametrize("name,finetune,text,reported", [
    ("ma_fsar", "peft", True, "MA-FSAR"), ("aim", "peft", False, "AIM (OTAM)"),
    ("clip_fsar", "full", True, "CLIP-FSAR"), ("clip_zeroshot", "none", True, "CLIP-Freeze")])
def test_cards(name, finetune, text, reported):
    import csv
    import inspect
    from pathlib import Path

    import yaml

    from fsar_bench.registry import method_class

    cls = method_class(name)
    card = cls.card()
    here = Path(inspect.getfile(cls))
    path = here.with_name(f"{name}.card.yaml")
    path = path if path.exists() else here.with_name("card.yaml")
    import dataclasses

    from fsar_bench.protocol import MethodCard

    keys = set(yaml.safe_load(path.read_text()))
    assert CARD_KEYS <= keys <= {f.name for f in dataclasses.fields(MethodCard)}
    assert card.weights, "the card names the paper's weights per preset (#18)"
    assert card.finetune == finetune and card.text_at_test is text and card.pretraining == "CLIP"
    assert card.default_matcher == cls.default_matcher and reported in card.reported_as
    csv_path = Path(__file__).resolve().parents[1] / "leaderboards" / "reported" / "accuracy.csv"
    if csv_path.exists():  # the names must be the reported CSV's
        with open(csv_path) as fh:
            assert set(card.reported_as) <= {row["method"] for row in csv.DictReader(fh)}
