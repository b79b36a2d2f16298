"""Golden tests: CLIP-FSAR's temporal transformer and head against the authors' release
(alibaba-mmai-research/CLIP-FSAR, `models/base/few_shot.py`: `Transformer_v1` and
`CNN_OTAM_CLIPFSAR.forward` in eval mode; commit in tests/golden/UPSTREAM.md).

The release's definitions were run outside this repository on random frame features (D = 32,
T = 4, 8 heads, FFN width 64 instead of the release's fixed 2048 to keep the case small; 3-way
2-shot with a shuffled support order, 2 queries per class; the CLIP backbone replaced by the
identity, random "text features"), in float64, with MERGE_BEFORE off (the 1-shot configs: shots
averaged after the transformer) and on (the 5-shot configs: before it). `class_logits` is the
release's auxiliary text classification term: scale * cos_eps(mean frame feature, train texts).
Weights and inputs are rebuilt here from a seed (tests/golden/seeded.py); tests/golden/
clip_fsar.expected.json holds only the release's outputs.

Key map (release `context2` = Transformer_v1 -> ours TemporalTextTransformer):
  layers.0.0.norm -> layers.0.norm;  layers.0.0.fn.to_q / to_k / to_v -> layers.0.to_q / to_k / to_v
  layers.0.0.fn.to_out.0 -> layers.0.out.0;  layers.0.1.net.0 / net.3 -> layers.0.ffn.0 / ffn.3
"""

from __future__ import annotations

import functools

import pytest
import torch
from golden_io import assert_close, load_golden, load_mapped

from fsar_bench.matchers.otam import OTAM
from fsar_methods.clip_baselines.clip_fsar import TemporalTextTransformer, cos_eps
from fsar_methods._clip.matching import PrototypeModulatedMatcher

D, T, FFN, WAY = 32, 4, 64, 3
KEY_MAP = {"layers.0.0.norm": "layers.0.norm", "layers.0.0.fn.to_q": "layers.0.to_q",
           "layers.0.0.fn.to_k": "layers.0.to_k", "layers.0.0.fn.to_v": "layers.0.to_v",
           "layers.0.0.fn.to_out.0": "layers.0.out.0", "layers.0.1.net.0": "layers.0.ffn.0",
           "layers.0.1.net.3": "layers.0.ffn.3"}


def _transformer(g: dict) -> TemporalTextTransformer:
    module = TemporalTextTransformer(D, depth=1, heads=8, ffn_dim=FFN).double()
    load_mapped(module, g["weight"], KEY_MAP, "context2.")
    return module.eval()


@functools.cache
def _method_head() -> PrototypeModulatedMatcher:
    """The head `clip_fsar` builds (its OTAM settings: lambda 0.5, shots averaged), built once."""
    from fsar_bench.registry import create_method

    head = create_method("clip_fsar", preset="tiny").build_matcher("otam")
    assert isinstance(head, PrototypeModulatedMatcher) and isinstance(head.metric, OTAM)
    assert (head.metric.lam, head.metric.kshot, head.metric.bidirectional) == (0.5, "prototype", True)
    return head


def test_temporal_transformer_matches_the_release(one_thread):
    g = load_golden("clip_fsar")
    with torch.no_grad():
        out = _transformer(g)(g["input"]["query"].view(-1, T, D))
    assert_close(out, g["expected"]["context2.query"], "CLIP-FSAR temporal transformer")


@pytest.mark.parametrize("merge_before", [False, True])
def test_head_matches_the_release(merge_before, one_thread):
    g = load_golden("clip_fsar")
    inp = g["input"]
    support_frames = inp["support"].view(1, -1, T, D)
    query_frames = inp["query"].view(1, -1, T, D)
    support = {"frames": support_frames, "text": inp["text_test"][inp["support_text_index"]][None]}
    query = {"frames": query_frames, "text": torch.zeros(1, query_frames.shape[1], D, dtype=torch.float64)}
    built = _method_head()
    assert built.merge_shots  # the default is MERGE_BEFORE (every 5-shot config; a no-op at 1 shot)
    head = PrototypeModulatedMatcher(_transformer(g), built.metric, merge_shots=merge_before)
    with torch.no_grad():
        logits = head.score_batch(query, support, inp["support_labels"][None], WAY)
    assert_close(logits[0], g["expected"][f"head.logits_merge_before_{str(merge_before).lower()}"],
                 f"CLIP-FSAR head logits (MERGE_BEFORE={merge_before})")
    # the auxiliary text term of the training loss (CLIPFSAR.training_loss): supports, then queries
    feats = torch.cat([support_frames[0].mean(dim=1), query_frames[0].mean(dim=1)])
    assert_close(cos_eps(feats, inp["text_train"]), g["expected"]["head.class_logits"], "CLIP-FSAR text logits")
