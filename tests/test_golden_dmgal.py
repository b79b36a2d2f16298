"""Golden test: S-MGA, C-MGA and the DMGAL-FT head (C-MGA + Bi-MHM) against the authors' release
(ReverseSuzhou/DMGAL, `DMGAL.py`; commit in tests/golden/UPSTREAM.md).

The release was run outside this repository at D = 32, T = 4, 7x7 maps (its modules hard-code
7x7), 2-way 2-shot, 1 query per class, with random float32 weights (all gates non-zero, random
BatchNorm statistics) and inputs rebuilt here from a seed (tests/golden/seeded.py);
tests/golden/dmgal.expected.json holds only the outputs in eval mode and the BatchNorm running
statistics after one train-mode forward of the release's `DMAGL` head (supports before queries; dropout off, so that the statistics of
C-MGA do not depend on S-MGA's dropout draws).

Key map (release module -> ours):
  Motion_Excitation (mSEModule)  -> SMGA.attention (SelfMGA)
  mlp_mix1 (MLP_Mix_1)           -> SMGA.mixer (TemporalMixer)
  spa_mix2 (spa_mix_2)           -> CrossMGA
  inside the motion part:  conv1 -> motion.compress.0, bn1 -> motion.compress.1,
    conv2 -> motion.phi2, conv3_smallscale4 / bn3_smallscale4 -> motion.full_scale.0 / .1,
    conv3_smallscale2 / bn3_smallscale2 -> motion.pooled_scale.1 / .2, conv3 -> motion.aggregate,
    conv -> phi3.conv
  S-MGA: gamma -> gate.   C-MGA: norm_qk -> norm, gamma1 (self) -> lambda2, gamma2 (cross) -> lambda1.
  Mixer: fc_t1 / fc_t2 -> time.0 / time.2, fc_d1 / fc_d2 -> channel.0 / channel.2.
  The release's positional-encoding buffer (pe.pe) is not seeded: ours computes it.
"""

from __future__ import annotations

import torch
from golden_io import assert_close, load_golden, load_mapped

from fsar_bench.matchers.bimhm import BiMHM
from fsar_methods.dmgal.cmga import CrossMGA
from fsar_methods.dmgal.dmgal_ft import METRIC_DEFAULTS
from fsar_methods.dmgal.matchers import CMGAMatcher
from fsar_methods.dmgal.motion import mga_config
from fsar_methods.dmgal.smga import SMGA

D, T, R = 32, 4, 8
MOTION = {"conv1": "motion.compress.0", "bn1": "motion.compress.1", "conv2": "motion.phi2",
          "conv3_smallscale4": "motion.full_scale.0", "bn3_smallscale4": "motion.full_scale.1",
          "conv3_smallscale2": "motion.pooled_scale.1", "bn3_smallscale2": "motion.pooled_scale.2",
          "conv3": "motion.aggregate", "conv": "phi3.conv"}
SMGA_MAP = {**{k: f"attention.{v}" for k, v in MOTION.items()}, "gamma": "attention.gate"}
MIXER_MAP = {"fc_t1": "mixer.time.0", "fc_t2": "mixer.time.2", "fc_d1": "mixer.channel.0", "fc_d2": "mixer.channel.2"}
CMGA_MAP = {**MOTION, "norm_qk": "norm", "gamma1": "lambda2", "gamma2": "lambda1"}


def _build() -> tuple[dict, SMGA, CrossMGA]:
    g = load_golden("dmgal")
    config = mga_config("release")
    smga = SMGA(D, T, R, config).double()
    weights = {k.replace("Motion_Excitation.", "smga.", 1).replace("mlp_mix1.", "smga.", 1): v
               for k, v in g["weight"].items()}
    load_mapped(smga, weights, {**SMGA_MAP, **MIXER_MAP}, "smga.")
    cmga = CrossMGA(D, R, config).double()
    load_mapped(cmga, g["weight"], CMGA_MAP, "spa_mix2.")
    return g, smga, cmga


def _videos(x: torch.Tensor) -> torch.Tensor:
    """The release's frame batch [N*T, D, 7, 7] -> ours [N, T, D, 7, 7]."""
    return x.unflatten(0, (-1, T))


def test_smga_cmga_and_head_match_the_release_in_eval_mode(one_thread):
    g, smga, cmga = _build()
    smga.eval()
    cmga.eval()
    support, query = _videos(g["input"]["support"]), _videos(g["input"]["query"])
    labels = g["input"]["support_labels"]
    exp = g["expected"]
    with torch.no_grad():
        assert_close(smga.attention(query).flatten(0, 1), exp["smga_attention.query"], "S-MGA attention (Eqs. 4-7)")
        s, q = smga(support), smga(query)
        assert_close(q, exp["smga.query"], "S-MGA with the temporal mixer (Eqs. 4-9)")
        cq, cs = cmga(q[None], s[None])
        assert_close(cq[0], exp["cmga.query"], "C-MGA query (Eq. 13)")
        assert_close(cs[0, :1], exp["cmga.support0"], "C-MGA support (Eq. 14)")
        # DMGAL-FT's own Bi-MHM settings (the release's: sum over frames, distances averaged over shots)
        head = CMGAMatcher(BiMHM(**METRIC_DEFAULTS["bimhm"]), cmga).double().eval()
        logits = head.score_batch(q[None], s[None], labels[None], way=2)
    assert_close(logits, exp["head.logits"], "DMGAL-FT head: C-MGA + Bi-MHM logits")


def test_batchnorm_statistics_after_one_training_forward_match_the_release(one_thread):
    """The release runs S-MGA on the support set, then on the query set, and C-MGA's motion
    extractor on the support set before the query set; the order decides the running statistics."""
    g, smga, cmga = _build()
    for module in (smga, cmga):
        module.train()
        for m in module.modules():
            if isinstance(m, torch.nn.Dropout):
                m.eval()  # as in the generator: C-MGA then sees deterministic S-MGA outputs
    with torch.no_grad():
        s = smga(_videos(g["input"]["support"]))  # support first, as Method.episode_logits embeds
        q = smga(_videos(g["input"]["query"]))
        cmga(q[None], s[None])
    for ours, prefix, key_map in ((smga, "Motion_Excitation.", SMGA_MAP), (cmga, "spa_mix2.", CMGA_MAP)):
        state = ours.state_dict()
        for key, expected in g["train_stats"].items():
            if not key.startswith(prefix):
                continue
            layer, stat = key[len(prefix):].rsplit(".", 1)
            assert_close(state[f"{key_map[layer]}.{stat}"], expected, f"running statistic {key}")
