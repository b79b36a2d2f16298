"""Key map of tobyperrett/few-shot-action-recognition (@ 3687f3a9, `model.py`: `CNN_TRX`, `CNN_OTAM`;
the facts of tests/test_golden_fsarlib.py) for ProtoNet with `--matcher trx` or `--matcher otam`.

The release's state dict: `backbone.{0,1,4..7}` (torchvision ResNet children without fc, avgpool
at index 8 has no weights), and for TRX `transformers.N.{k_linear,v_linear,norm_k,norm_v}` plus
the fixed `transformers.N.pe.pe` and `transformers.N.tuples.M` (frame index tuples, not learnt).
`norm_v` is built but never used in its forward: not loaded. Saved as `{'model_state_dict': ...}`.
"""

from __future__ import annotations

from fsar_bench.engine.checkpoint import KeyMap

RESNET = (("backbone.0", "encoder.conv1"), ("backbone.1", "encoder.bn1"), ("backbone.4", "encoder.layer1"),
          ("backbone.5", "encoder.layer2"), ("backbone.6", "encoder.layer3"), ("backbone.7", "encoder.layer4"))
TRX = {"k_linear": "key", "v_linear": "value", "norm_k": "key_norm"}

FSAR_LIB_RELEASE = KeyMap(
    source="tobyperrett/few-shot-action-recognition model.py CNN_TRX/CNN_OTAM",
    renames=(*RESNET, *((f"transformers.{i}.{k}", f"matcher.{v}.{i}") for i in range(4) for k, v in TRX.items())),
    ignore=("transformers.*.norm_v.*", "transformers.*.pe.pe", "transformers.*.tuples.*"))
