"""Key map of the authors' DMGAL-FT release (ReverseSuzhou/DMGAL @ 022d8adc, `DMGAL.py`, class `DMAGL`;
the same facts as the golden test tests/test_golden_dmgal.py).

The release's state dict: `resnet.{0,1,4..7}` (torchvision ResNet children without avgpool/fc:
conv1, bn1, layer1..4), `Motion_Excitation.*` (mSEModule = our S-MGA attention), `mlp_mix1.*`
(MLP_Mix_1 = our temporal mixer), `spa_mix2.*` (spa_mix_2 = our C-MGA). `Motion_Excitation.pe.pe`
is a fixed sinusoid buffer ours computes. Its run script saves `{'model_state_dict': ...}`;
`distribute_model` wraps `resnet` in DataParallel (`resnet.module.*`): both are unwrapped.
"""

from __future__ import annotations

from fsar_bench.engine.checkpoint import KeyMap

RESNET = (("resnet.0", "encoder.conv1"), ("resnet.1", "encoder.bn1"), ("resnet.4", "encoder.layer1"),
          ("resnet.5", "encoder.layer2"), ("resnet.6", "encoder.layer3"), ("resnet.7", "encoder.layer4"))
MOTION = {"conv1": "motion.compress.0", "bn1": "motion.compress.1", "conv2": "motion.phi2",
          "conv3_smallscale4": "motion.full_scale.0", "bn3_smallscale4": "motion.full_scale.1",
          "conv3_smallscale2": "motion.pooled_scale.1", "bn3_smallscale2": "motion.pooled_scale.2",
          "conv3": "motion.aggregate", "conv": "phi3.conv"}
SMGA = {"gamma": "gate", **MOTION}
MIXER = {"fc_t1": "time.0", "fc_t2": "time.2", "fc_d1": "channel.0", "fc_d2": "channel.2"}
CMGA = {**MOTION, "norm_qk": "norm", "gamma1": "lambda2", "gamma2": "lambda1"}  # gamma1: self, gamma2: cross

DMGAL_RELEASE = KeyMap(
    source="ReverseSuzhou/DMGAL DMGAL.py DMAGL",
    renames=(*RESNET,
             *((f"Motion_Excitation.{k}", f"smga.attention.{v}") for k, v in SMGA.items()),
             *((f"mlp_mix1.{k}", f"smga.mixer.{v}") for k, v in MIXER.items()),
             *((f"spa_mix2.{k}", f"matcher.cmga.{v}") for k, v in CMGA.items())),
    ignore=("Motion_Excitation.pe.pe",))
