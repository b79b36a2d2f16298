"""I2ST (methods/i2st): the parts of the paper, the mask path, training, and the full-size model."""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import pytest
import torch

from fsar_bench.config import load_config
from fsar_bench.data.cards import get_card
from fsar_bench.data.source import VideoSource
from fsar_bench.engine.batches import TrainEpisodes, train_episodes
from fsar_bench.engine.evaluate import clip_transform
from fsar_bench.engine.train import TrainConfig, TrainData, train_episodic
from fsar_bench.registry import create_method, method_class

# Table 8 of the paper: I2ST 130.2 M parameters, I2ST-S / I2ST-T 88.5 M.
PAPER_PARAMS = 130.2e6
PAPER_PARAMS_ONE_BRANCH = 88.5e6
# What the full preset builds (ResNet-50 23.51 M + IPE 4.46 M + IPD 0.92 M + S/T branches
# 2 x 41.98 M + global fusion 16.81 M); docs/methods/i2st.md gives the breakdown.
OUR_PARAMS = 129_648_313


@pytest.fixture()
def one_thread():
    """The CI machine is shared: one intra-op thread is several times faster than two on busy cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(**overrides):
    return create_method("i2st", preset="tiny", **overrides)


def toy_episodes(method, root: Path, steps: int, *, with_masks: bool = True, dataset: str = "toy-motion",
                 mask_root: bool = True) -> TrainEpisodes:
    card = get_card(dataset)
    src = VideoSource.open(card, load_config(), root / dataset)
    if not mask_root:
        src = dataclasses.replace(src, mask_root=None)
    return TrainEpisodes(src, "train", 5, 1, 1, steps, "train/i2st-test", method.frames,
                         clip_transform(method, src, 0.2), with_masks=with_masks)


# -- the method card and the protocol -----------------------------------------------------------

def test_card_and_registration():
    cls = method_class("i2st")
    card = cls.card()
    assert card.finetune == "full" and card.text_at_test is False
    assert card.default_matcher == cls.default_matcher == "global_local"
    assert "I2ST" in card.reported_as and card.pretraining == "ImageNet"
    assert cls.extra_inputs == frozenset({"masks"})
    assert set(cls.presets) == {"full", "tiny"} and cls.presets["full"]["pretrained"] is True
    assert cls.presets["full"]["backbone"] == "resnet50" and cls.presets["full"]["image_size"] == 224


def test_embed_returns_global_local_streams_and_never_uses_the_decoder(one_thread):
    m = tiny().eval()
    calls = []
    m.ipd.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        f = m.embed(torch.randn(2, 8, 3, 32, 32))
    assert f["frames"].shape == (2, 8, m.feature_dim) and f["global"].shape == (2, m.feature_dim)
    assert not calls  # the Instance Perception Decoder is dropped at inference (Sec. 3.3)


def test_embed_is_episode_independent(one_thread):
    torch.manual_seed(0)
    m = tiny().eval()
    clips = torch.randn(4, 8, 3, 32, 32)
    with torch.no_grad():
        together = m.embed(clips)
        alone = [m.embed(clips[i:i + 1]) for i in range(4)]
    for k in ("frames", "global"):
        assert torch.allclose(together[k], torch.cat([a[k] for a in alone]), atol=1e-5)


def test_local_weights_file_is_loaded(tmp_path):
    import timm

    donor = timm.create_model("test_resnet", pretrained=False, num_classes=0)
    path = tmp_path / "test_resnet.pt"
    torch.save(donor.state_dict(), path)
    m = tiny(weights=str(path))
    assert m.weights_source.startswith("file:")
    for (name, p), q in zip(m.encoder.state_dict().items(), donor.state_dict().values()):
        assert torch.equal(p, q), name
    assert tiny().weights_source == "random-init"


@pytest.mark.parametrize("switches", [
    {"s_branch": False}, {"t_branch": False}, {"s_branch": False, "t_branch": False},
    {"instance_perception": False}, {"fusion": "cross"}, {"global_fusion": False},
])
def test_ablation_switches_build_and_embed(switches, one_thread):
    m = tiny(**switches).eval()
    with torch.no_grad():
        f = m.embed(torch.randn(2, 8, 3, 32, 32))
        logits = m.score(f, f, torch.tensor([0, 1]), 2)
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()
    if switches.get("s_branch") is False:
        assert m.sam.spatial is None
    if switches.get("instance_perception") is False:
        assert m.ipe is None and m.ipd is None and m.extra_inputs == frozenset()


def test_frame_level_matchers_get_the_local_prototypes(one_thread):
    """Table 5's local-only rows: `--matcher bimhm` / `otam` score the frame stream."""
    for matcher in ("bimhm", "otam"):
        m = create_method("i2st", preset="tiny", matcher=matcher).eval()
        with torch.no_grad():
            f = m.embed(torch.randn(3, 8, 3, 32, 32))
            assert m.score(f, f, torch.tensor([0, 1, 2]), 3).shape == (3, 3)


def test_cross_fusion_has_one_attention_per_branch():
    self_m, cross_m = tiny(), tiny(fusion="cross")
    count = lambda mod: sum(p.numel() for p in mod.parameters())  # noqa: E731
    mha = count(self_m.sam.spatial.attn_ins)
    assert count(self_m) - count(cross_m) == 2 * mha  # one MHA fewer in each of the S and T branches


# -- training and the mask path -----------------------------------------------------------------

def test_tiny_preset_trains_with_the_mask_loss(workdir, toy_data_root, one_thread):
    """20 episodes of toy-motion with its ground-truth object masks: the loss falls, and the L2 mask
    loss (Eq. 3) is finite, non-zero, part of the total (Eq. 7) and falls too. Measured (means of the
    first and last 10 steps): loss 2.10 -> 2.01 and mask loss 0.341 -> 0.298 in 20 steps; 40 steps
    gave 2.10 -> 1.98 and 0.341 -> 0.272, the same evidence at twice the cost."""
    torch.manual_seed(0)
    m = tiny()
    steps = 20
    episodes = toy_episodes(m, toy_data_root, steps, with_masks="masks" in m.extra_inputs)
    batch = episodes[0]
    assert batch.extras["support_masks"].shape == (5, 8, 32, 32) and batch.extras["query_masks"].shape == (5, 8, 32, 32)
    assert 0 < float(batch.extras["support_masks"].mean()) < 0.5  # real object masks, not empty

    out = m.training_loss(batch)
    parts = m.mask_weight * out["mask"] + out["ce"] + m.contrastive_weight * out["contrastive"]
    assert float(out["mask"]) > 0 and torch.allclose(out["loss"].detach(), parts, atol=1e-5)
    assert float(out["mask_loss_on"]) == 1.0

    log: list[dict[str, float]] = []
    state = train_episodic(m, TrainData(episodes, log=lambda d, s: log.append(d)), TrainConfig(steps=steps, lr=1e-3))
    first, last = slice(0, 10), slice(-10, None)
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    assert all(math.isfinite(x) for x in state.losses)
    assert mean(state.losses[last]) < mean(state.losses[first])
    steps_log = [d for d in log if "train_mask" in d]  # the loop also logs `lr` on its own when it changes
    assert len(steps_log) == steps
    masks = [d["train_mask"] for d in steps_log]
    assert all(math.isfinite(x) and x > 0 for x in masks)
    assert mean(masks[last]) < mean(masks[first])
    assert all(d["train_mask_loss_on"] == 1.0 for d in steps_log)


def test_mask_loss_off_requests_no_masks_and_is_flagged(workdir, toy_data_root, one_thread):
    m = tiny(mask_loss=False)
    assert m.extra_inputs == frozenset() and type(m).extra_inputs == frozenset({"masks"})
    assert m.hparams["mask_loss"] is False  # logged with the run's parameters (hp.mask_loss)
    episodes = toy_episodes(m, toy_data_root, 2, with_masks="masks" in m.extra_inputs)
    batch = episodes[0]
    assert "support_masks" not in batch.extras
    out = m.training_loss(batch)
    assert "mask" not in out and float(out["mask_loss_on"]) == 0.0 and torch.isfinite(out["loss"])


def test_dataset_without_masks_trains_with_the_mask_loss_off(workdir, toy_data_root, one_thread):
    """No masks configured for the training dataset: the `prepare_training` hook, run before the
    training episodes are built, switches the mask loss off and flags it; no masks are requested."""
    m = tiny()
    src = dataclasses.replace(toy_episodes(m, toy_data_root, 2).source, mask_root=None)
    with pytest.warns(UserWarning, match="WITHOUT the instance mask loss"):
        episodes = train_episodes(m, src, 5, 1, 1, 2, "train/i2st-test", clip_transform(m, src, 0.2))
    state = m.fit(TrainData(episodes), TrainConfig(steps=2, lr=1e-3))
    assert state.step == 2 and not episodes.with_masks
    assert m.hparams["mask_loss"] is False and "no instance masks" in m.hparams["mask_loss_off_reason"]
    assert m.extra_inputs == frozenset()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # flagged once, not at every step
        assert float(m.training_loss(episodes[1])["mask_loss_on"]) == 0.0


def test_supervised_contrastive_loss():
    from fsar_methods.i2st.losses import supervised_contrastive

    labels = torch.tensor([0, 0, 1, 1])
    separated = torch.tensor([[1.0, 0], [1.0, 0.01], [0, 1.0], [0.01, 1.0]])
    mixed = torch.tensor([[1.0, 0], [0, 1.0], [1.0, 0.01], [0.01, 1.0]])
    assert supervised_contrastive(separated, labels) < supervised_contrastive(mixed, labels)
    assert float(supervised_contrastive(separated, torch.arange(4))) == 0.0  # no positives


# -- the full (paper) configuration -------------------------------------------------------------

@pytest.mark.slow
def test_full_parameter_count_matches_table_8():
    full_model = create_method("i2st", preset="full", pretrained=False)  # construction only
    total = full_model.parameter_counts()["params_total"]
    assert total == OUR_PARAMS
    assert abs(total - PAPER_PARAMS) / PAPER_PARAMS < 0.01
    count = lambda mod: sum(p.numel() for p in mod.parameters())  # noqa: E731
    assert full_model.feature_dim == 2048 and count(full_model.encoder) == 23_508_032  # ResNet-50
    one_branch = total - count(full_model.sam.spatial)  # I2ST-S / I2ST-T
    assert abs(one_branch - PAPER_PARAMS_ONE_BRANCH) / PAPER_PARAMS_ONE_BRANCH < 0.02


@pytest.mark.slow
def test_full_preset_forward_5way_1shot(full_forward):
    """One 5-way 1-shot episode (5 supports, 1 query) at 224 px, 8 frames: the forward pass
    of tests/test_all_methods.py, shared through the session's `full_forward` fixture."""
    out = full_forward("i2st")
    s = out.support
    assert s["frames"].shape == (5, 8, 2048) and s["global"].shape == (5, 2048)
    assert out.logits.shape == (1, 5) and torch.isfinite(out.logits).all()
