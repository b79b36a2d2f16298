"""Golden tests: the OTAM and TRX matchers against the fsar-lib heads (tobyperrett/
few-shot-action-recognition, `model.py`: `CNN_OTAM`, `CNN_TRX` / `TemporalCrossTransformer`;
commit in tests/golden/UPSTREAM.md).

The heads were run outside this repository with the backbone replaced by the identity, on random
frame features (D = 16, T = 5, 3-way 2-shot with the support order shuffled, 2 queries per class),
in float64. OTAM: lambda 0.1, both alignment directions, distances averaged over the shots. TRX:
pairs and triples, key/value width 24 (the release forces 1152; its transformers were rebuilt at
24), random float32 weights. Weights and inputs are rebuilt here from a seed (tests/golden/seeded.py);
tests/golden/fsarlib_heads.expected.json holds only the release's outputs.

TRX key map (release -> ours), i = index of the cardinality in temp_set [2, 3]:
  transformers.i.k_linear -> key.i,  transformers.i.v_linear -> value.i,  transformers.i.norm_k -> key_norm.i
  transformers.i.norm_v: built but never used by the release, not loaded;
  transformers.i.tuples (frame-index constants) and pe.pe (positional table): ours computes them.
"""

from __future__ import annotations

import torch
from golden_io import assert_close, load_golden, load_mapped

from fsar_bench.matchers.otam import OTAM
from fsar_bench.matchers.trx import TRX

D, T, WAY = 16, 5, 3
TRX_MAP = {f"{i}.{up}": f"{ours}.{i}" for i in range(2)
           for up, ours in (("k_linear", "key"), ("v_linear", "value"), ("norm_k", "key_norm"))}


def _episode() -> tuple[dict, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = load_golden("fsarlib_heads")
    inp = g["input"]
    return g, inp["query"].view(1, -1, T, D), inp["support"].view(1, -1, T, D), inp["support_labels"][None]


def test_otam_matches_fsar_lib(one_thread):
    g, query, support, labels = _episode()
    logits = OTAM(lam=0.1, bidirectional=True, kshot="distance").score_batch(query, support, labels, WAY)
    assert_close(logits[0], g["expected"]["otam.logits"], "OTAM logits")


def test_trx_matches_fsar_lib(one_thread):
    g, query, support, labels = _episode()
    weights = {k: v for k, v in g["weight"].items() if ".norm_v." not in k}
    expected = g["expected"]
    for cardinalities, key in (((2,), "trx.logits_cardinality2"), ((2, 3), "trx.logits")):
        trx = TRX(D, cardinalities=cardinalities, width=24).double().eval()
        subset = {k: v for k, v in weights.items() if int(k.split(".")[1]) < len(cardinalities)}
        load_mapped(trx, subset, TRX_MAP, "transformers.")
        with torch.no_grad():
            logits = trx.score_batch(query, support, labels, WAY)
        assert_close(logits[0], expected[key], f"TRX logits, cardinalities {cardinalities}")
