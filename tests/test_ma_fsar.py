"""MA-FSAR (fsar_methods.ma_fsar): equations, wiring into open_clip, parameter counts vs Table 4,
weights from a local file, episode independence, training on toy data, the CLI run."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import fsar_bench
from fsar_bench.data.cards import get_card
from fsar_bench.protocol import EpisodeBatch, map_features
from fsar_bench.weights import open_clip_model
from fsar_methods.ma_fsar import losses
from fsar_methods._clip.backbone import FrameEncoder, load_clip, vit_output, vit_tokens
from fsar_methods.ma_fsar.fgma import FgMAViT
from fsar_methods._clip.text import PROMPT_TEMPLATES
from fsar_methods.ma_fsar.tpcm import TPCM, AttentionLayer


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models run single-threaded


def tiny(**kw):
    torch.manual_seed(0)
    return fsar_bench.create_method("ma_fsar", preset="tiny", **kw)


def clips(n, seed=0, size=32):
    return torch.randn(n, 8, 3, size, size, generator=torch.Generator().manual_seed(seed))


def episode(method, way=5, shot=1, query=1, seed=0) -> EpisodeBatch:
    names = [f"action {i}" for i in range(way)]
    return EpisodeBatch(
        support=clips(way * shot, seed), support_labels=torch.arange(way).repeat_interleave(shot),
        query=clips(way * query, seed + 1), query_labels=torch.arange(way).repeat_interleave(query),
        way=way, shot=shot, class_names=names, global_labels=torch.arange(way), split_class_names=names)


# -- wiring into open_clip ---------------------------------------------------------------------
def test_token_helpers_reproduce_open_clip_vit():
    model, _ = open_clip_model("fsar-tiny-vit")
    vit = model.visual.eval()
    x = torch.randn(4, 3, 32, 32)
    z = vit_tokens(vit, x)
    for block in vit.transformer.resblocks:
        z = block(z)
    torch.testing.assert_close(vit_output(vit, z), vit(x))


def test_fgma_at_init_without_extra_tokens_is_frozen_clip():
    """Zero-initialised up-projections: with GTA off and no text, FgMA computes CLIP exactly (Eqs. 5, 8)."""
    torch.manual_seed(0)
    visual, _, _ = load_clip("fsar-tiny-vit")
    plain = FrameEncoder(visual).eval()
    fgma = FgMAViT(visual, 64, gta=False).eval()
    x = clips(2)
    with torch.no_grad():
        torch.testing.assert_close(fgma(x), plain(x))


def test_clip_frozen_and_only_fgma_tpcm_train():
    m = tiny()
    trainable = {n.split(".")[0] + "." + n.split(".")[1] for n, p in m.named_parameters() if p.requires_grad}
    assert trainable == {"visual.fc_text", "visual.layers", "matcher.module"}
    assert not any(p.requires_grad for p in m.text.parameters())
    assert not any(p.requires_grad for p in m.visual.vit.parameters())
    layer = m.visual.layers[0]
    assert layer.gta.skip is False and layer.gta_in.skip is True  # Eq. 4: the GTA adapter has no skip
    assert layer.local.skip is True and layer.joint.skip is False and layer.joint_scale == 0.5
    assert layer.local.fc_down.out_features == 16  # bottleneck 0.25 of width 64


def test_text_enters_supports_only_through_lma():
    m = tiny().eval()
    x = clips(2)
    with torch.no_grad():
        s, q = m.embed(x, ["jumping", "running"]), m.embed(x)
    assert not torch.allclose(s["frames"], q["frames"])  # LMA appends the FC_text token (Eqs. 6-7)
    assert torch.count_nonzero(q["text"]) == 0 and s["text"].shape == (2, m.feature_dim)
    m2 = tiny(lma_text=False).eval()
    with torch.no_grad():
        torch.testing.assert_close(m2.embed(x, ["jumping", "running"])["frames"], m2.embed(x)["frames"])


def test_ablation_switches_remove_their_adapters():
    m = tiny(gta=False, joint_adapter=False)
    layer = m.visual.layers[0]
    assert layer.gta is None and layer.gta_in is None and layer.joint is None and layer.local is not None
    assert tiny(gta_input_adapter=False).visual.layers[0].gta_in is None
    assert tiny(tpcm=False).matcher.module is None


# -- TPCM and the losses -----------------------------------------------------------------------
def test_tpcm_equations_9_to_12():
    torch.manual_seed(0)
    tpcm = TPCM(32, heads=4, ffn_dim=64).eval()
    frames, text = torch.randn(3, 8, 32), torch.randn(3, 32)
    layer = tpcm.layer
    q = frames + text[:, None]  # Eq. 9
    kv = torch.cat([frames, text[:, None]], dim=1)  # Eq. 10
    qn, kn = layer.norm(q), layer.norm(kv)

    def heads(t):
        return t.view(3, -1, 4, 8).transpose(1, 2)

    att = torch.softmax(heads(layer.to_q(qn)) @ heads(layer.to_k(kn)).transpose(-1, -2) / math.sqrt(8), -1)
    out = (att @ heads(layer.to_v(kn))).transpose(1, 2).reshape(3, 8, 32)
    x = q + layer.out(out)  # Eq. 11
    x = x + layer.ffn(x)  # Eq. 12
    with torch.no_grad():
        torch.testing.assert_close(tpcm(frames, text), x)
        torch.testing.assert_close(tpcm(frames), layer(frames, frames))  # query branch: q = k = v = F_Q


def test_tpcm_size_matches_table4_frozen_row():
    """The 'Frozen' row of Table 4 trains 3.15 M parameters: TPCM alone, at D' = 512."""
    assert sum(p.numel() for p in AttentionLayer(512).parameters()) == 3_149_824


def test_fusion_and_loss_equations():
    q2t, q2s = torch.randn(2, 3, 5), torch.randn(2, 3, 5)
    p = 0.25 * q2t.softmax(-1) + 0.75 * q2s.softmax(-1)
    torch.testing.assert_close(losses.fused_log_probs(q2t, q2s, 0.25).exp(), p)  # Eq. 17
    logits, labels = torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    torch.testing.assert_close(losses.video_text_kl(logits, labels), F.cross_entropy(logits, labels))
    one = torch.tensor(1.0)
    assert float(losses.total_loss(0.75, one, 3 * one, 2 * one)) == pytest.approx(0.75 * 2 + 0.25 * 2)  # Eq. 16
    v, t = torch.randn(1, 2, 8), torch.randn(1, 5, 8)
    cos = F.normalize(v, dim=-1) @ F.normalize(t, dim=-1).transpose(1, 2)
    torch.testing.assert_close(losses.video_text_logits(v, t, 10.0), 10 * cos)  # Eqs. 14-15


def test_score_batch_fuses_text_and_metric():
    m = tiny().eval()
    m.set_dataset(get_card("toy-motion"))
    b = episode(m)
    with torch.no_grad():
        s = map_features(m.embed(b.support, b.support_texts), lambda t: t[None])
        q = map_features(m.embed(b.query), lambda t: t[None])
        labels = b.support_labels[None]
        fused = m.score_batch(q, s, labels, 5, class_names=[b.class_names])
        q2s = m.matcher.score_batch(q, s, labels, 5)
        text = m.text(b.class_names)[None]
        q2t = m.text.logit_scale * F.normalize(q["frames"].mean(2), dim=-1) @ F.normalize(text, dim=-1).transpose(1, 2)
    p = 0.25 * q2t.softmax(-1) + 0.75 * q2s.softmax(-1)
    torch.testing.assert_close(fused.exp(), p, rtol=1e-4, atol=1e-6)


def test_alpha_follows_dataset_modality():
    m = tiny()
    m.set_dataset(get_card("toy-motion"))
    assert m.alpha == 0.25
    m.set_dataset(get_card("toy-appearance"))
    assert m.alpha == 0.75
    fixed = tiny(alpha=0.5)
    fixed.set_dataset(get_card("toy-motion"))
    assert fixed.alpha == 0.5


def test_prompt_templates_random_in_training_mean_at_inference():
    assert len(PROMPT_TEMPLATES) == 16 and PROMPT_TEMPLATES[0] == "{}" and "The woman is {}" in PROMPT_TEMPLATES
    m = tiny()
    table = m.text.all_templates(["pushing something"])[0]  # [16, D']
    m.eval()
    torch.testing.assert_close(m.text(["pushing something"])[0], table.mean(0))
    m.train()
    drawn = torch.stack([m.text(["pushing something"])[0] for _ in range(40)])
    match = (drawn[:, None] - table[None]).abs().amax(-1) < 1e-6  # each draw is one template's feature
    assert match.any(1).all() and match.any(0).sum() > 1
    assert tiny(prompt="cls").text.templates == ("{}",)


# -- per-video embedding ------------------------------------------------------------------------
def test_embed_is_episode_independent():
    m = tiny().eval()
    a, others = clips(1, seed=5), clips(3, seed=6)
    with torch.no_grad():
        for texts in (None, ["x"]):
            alone = m.embed(a, texts)
            batch = m.embed(torch.cat([others[:2], a, others[2:]]), None if texts is None else ["y", "z", "x", "w"])
            for k in alone:
                torch.testing.assert_close(batch[k][2:3], alone[k], rtol=1e-5, atol=1e-5)


# -- weights -------------------------------------------------------------------------------------
def test_clip_weights_from_local_file(tmp_path):
    torch.manual_seed(123)
    model, _ = open_clip_model("fsar-tiny-vit")
    path = tmp_path / "clip.pt"
    torch.save(model.state_dict(), path)
    m = fsar_bench.create_method("ma_fsar", preset="tiny", weights=str(path))
    assert m.weights_source.startswith("file:")
    torch.testing.assert_close(m.visual.vit.conv1.weight, model.visual.conv1.weight)
    torch.testing.assert_close(m.text.clip.token_embedding.weight, model.token_embedding.weight)
    assert tiny().weights_source == "random-init"


# -- training ------------------------------------------------------------------------------------
def test_tiny_trains_on_toy_data_and_loss_decreases(toy_data_root, workdir):
    from toy_training import train_steps

    def each(out):
        assert set(out) >= {"loss", "q2s", "q2t", "s2t", "logits"} and out["logits"].shape == (5, 5)

    curve = train_steps(tiny(), "toy-appearance", 40, 1e-2, jitter=0.2, each=each)
    first, last = sum(curve[:10]) / 10, sum(curve[-10:]) / 10
    assert last < first - 0.1, curve


def test_cli_run_tiny(workdir, cli):
    res = cli("run", "ma_fsar", "--dataset", "toy-motion", "--way", "5", "--shot", "1", "--episodes", "20",
              "--steps", "4")
    assert res.code == 0, res.err
    assert "accuracy" in res.out


# -- full size (ViT-B/32): Table 4 and one 5-way 1-shot forward pass ------------------------------
@pytest.fixture(scope="module")
def full_vit_b32():
    torch.manual_seed(0)
    return fsar_bench.create_method("ma_fsar", preset="full", pretrained=None)  # construction only


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


@pytest.mark.slow
def test_parameter_counts_vs_table4(full_vit_b32):
    """Table 4 (CLIP ViT-B/32; 'Params' includes the text encoder): Frozen 154.4 M / 3.15 M tunable,
    fine-tuned visual-only 154.4 / 90.99, + LMA/LSTA 159.2 / 7.94, + GTA 166.3 / 15.1, + JA 169.8 / 18.54."""
    m = full_vit_b32
    counts = m.parameter_counts()
    assert abs(counts["params_trainable"] / 18.54e6 - 1) < 0.10
    assert abs(counts["params_total"] / 169.8e6 - 1) < 0.10
    layers = m.visual.layers
    part = {k: sum(_count(getattr(layer, k)) for layer in layers) for k in ("gta_in", "gta", "local", "joint")}
    tpcm, fc_text = _count(m.matcher.module), _count(m.visual.fc_text)
    clip = _count(m.visual.vit) + _count(m.text)
    assert tpcm == 3_149_824 and fc_text == 512 * 768 + 768
    assert all(v == 12 * 295_872 for v in part.values())  # one 768 -> 192 -> 768 adapter per block each
    rows = {  # (total, tunable) of each row of Table 4, from the parts of our model
        "Frozen": (clip + tpcm, tpcm),
        "Fine-tuned visual-only": (clip + tpcm, _count(m.visual.vit) + tpcm),
        "+ LMA/LSTA": (clip + tpcm + fc_text + part["local"], tpcm + fc_text + part["local"]),
        "+ GTA": (clip + tpcm + fc_text + part["local"] + part["gta"] + part["gta_in"],
                  tpcm + fc_text + part["local"] + part["gta"] + part["gta_in"]),
        "+ JA": (counts["params_total"], counts["params_trainable"]),
    }
    printed = {"Frozen": (154.4e6, 3.15e6), "Fine-tuned visual-only": (154.4e6, 90.99e6),
               "+ LMA/LSTA": (159.2e6, 7.94e6), "+ GTA": (166.3e6, 15.1e6), "+ JA": (169.8e6, 18.54e6)}
    for row, (total, tunable) in rows.items():
        assert abs(total / printed[row][0] - 1) < 0.01, row
        assert abs(tunable / printed[row][1] - 1) < (0.01 if row in ("Frozen", "Fine-tuned visual-only") else 0.11), row
    assert rows["+ JA"] == (169_022_977, 17_745_664)


@pytest.mark.slow
def test_full_preset_forward_5way_1shot(full_forward):
    """The forward pass of tests/test_all_methods.py (supports with their class texts, toy-appearance's
    alpha), shared through the session's `full_forward` fixture."""
    out = full_forward("ma_fsar")
    assert out.image_size == 224 and out.frames == 8 and out.feature_dim == 512 and out.weights_source == "random-init"
    assert out.support["frames"].shape == (5, 8, 512) and out.logits.shape == (1, 5)
    torch.testing.assert_close(out.logits.exp().sum(-1), torch.ones(1))  # fused probabilities (Eq. 17)


@pytest.mark.slow
def test_rn50_variant_full_finetuning_without_fgma():
    torch.manual_seed(0)
    m = fsar_bench.create_method("ma_fsar", preset="rn50", pretrained=None).eval()
    assert isinstance(m.visual, FrameEncoder) and m.feature_dim == 1024
    assert all(p.requires_grad for p in m.visual.parameters()) and not any(p.requires_grad for p in m.text.parameters())
    b = episode(m)
    b.support, b.query = clips(5, 3, 224), clips(1, 4, 224)  # 5-way 1-shot, one query: 6 videos at 224 px
    with torch.no_grad():
        logp = m.score(m.embed(b.query), m.embed(b.support, b.support_texts), b.support_labels, 5)
    assert logp.shape == (1, 5) and torch.isfinite(logp).all()


def test_shot0_uses_the_text_branch_alone():
    """Table 11: zero-shot MA-FSAR matches queries with the class texts only."""
    m = tiny().eval()
    b = episode(m)
    with torch.no_grad():
        q = map_features(m.embed(b.query), lambda t: t[None])
        empty = map_features(m.embed(b.support[:1], ["x"]), lambda t: t[None, :0])
        logits = m.score_batch(q, empty, torch.zeros(1, 0, dtype=torch.long), 5, class_names=[b.class_names])
        text = m.text(b.class_names)  # [way, D']: the template-averaged class texts
        video = q["frames"][0].mean(1)  # [Q, D']: temporal average of each query (Eq. 15, F_q^avg)
        scale = float(m.text.logit_scale)
    # Eq. 15 written out per (query, class) pair: scale * <v, t> / (|v| |t|); no metric branch
    expected = torch.tensor([[scale * float(video[i] @ text[c]) / float(video[i].norm() * text[c].norm())
                              for c in range(5)] for i in range(video.shape[0])])
    assert logits.shape == (1, 5, 5)
    torch.testing.assert_close(logits[0], expected, rtol=1e-4, atol=1e-5)
    assert (logits[0].argmax(-1) == expected.argmax(-1)).all()
