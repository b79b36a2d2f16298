"""Key map of the authors' CLIP-FSAR release (alibaba-mmai-research/CLIP-FSAR @ 30cf0a8c,
`models/base/few_shot.py`, class `CNN_OTAM_CLIPFSAR`; the facts of tests/test_golden_clip_fsar.py).

The release's state dict: `backbone.*` (CLIP's visual encoder, OpenAI names = ours under
`visual.visual.`), `scale` (a [1] parameter: our scalar `text_scale`), `context2.layers.N.0.norm`
/ `.0.fn.to_q|to_k|to_v|to_out.0` / `.1.net.0|3` (Transformer_v1 = our temporal transformer).
`mid_layer` and `classification_layer` are empty Sequentials; the text features are plain
tensors, so the frozen CLIP text encoder is not in the file and stays as built (`keep`).
Their checkpoints nest the weights under `model_state` with DDP's `module.` prefix: unwrapped.
"""

from __future__ import annotations

from fsar_bench.engine.checkpoint import KeyMap

MAX_DEPTH = 12  # TRANSFORMER_DEPTH of the release's configs is 1; deeper ones map the same way
LAYER = {"0.norm": "norm", "0.fn.to_q": "to_q", "0.fn.to_k": "to_k", "0.fn.to_v": "to_v",
         "0.fn.to_out.0": "out.0", "1.net.0": "ffn.0", "1.net.3": "ffn.3"}

CLIP_FSAR_RELEASE = KeyMap(
    source="alibaba-mmai-research/CLIP-FSAR models/base/few_shot.py CNN_OTAM_CLIPFSAR",
    renames=(("backbone", "visual.visual"), ("scale", "text_scale"),
             *((f"context2.layers.{i}.{k}", f"matcher.module.layers.{i}.{v}")
               for i in range(MAX_DEPTH) for k, v in LAYER.items())),
    keep=("text.*",))
