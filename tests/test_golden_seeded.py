"""The golden cases' seeded weights and inputs (tests/golden/seeded.py) are the ones each
`<case>.expected.json` was computed from, and the jsons hold outputs only (no weights committed)."""

from __future__ import annotations

import pytest
import torch
from golden.seeded import CASES, case_tensors, digest, read_expected, seeded

UPSTREAM_REPOS = {"dmgal": "ReverseSuzhou/DMGAL@", "fsarlib_heads": "tobyperrett/few-shot-action-recognition@",
                  "clip_fsar": "alibaba-mmai-research/CLIP-FSAR@"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_seeded_numbers_are_those_the_expectations_were_computed_from(name):
    meta, outputs = read_expected(name)
    case = CASES[name]
    assert (meta["case"], meta["seed"], meta["sizes"]) == (name, case.seed, case.sizes)
    assert meta["upstream"].startswith(UPSTREAM_REPOS[name]) and len(meta["upstream"].split("@")[1]) == 40
    assert digest(case_tensors(name)) == meta["seeded_sha256"], (
        f"tests/golden/seeded.py (or torch's generator) changed: {name}.expected.json is stale")
    assert set(outputs) <= {"expected", "train_stats"} and outputs["expected"], "the json must hold outputs only"


def test_the_digest_sees_any_change_of_a_seeded_number():
    tensors = case_tensors("fsarlib_heads")
    before = digest(tensors)
    tensors["weight.transformers.0.k_linear.weight"][0, 0] += 1e-7
    assert digest(tensors) != before


def test_seeded_draws_float32_in_order_with_positive_variances():
    specs = [("weight.m.bn1.running_var", (64,)), ("weight.m.conv.weight", (4, 3)), ("input.x", (5,))]
    a, b = seeded(specs, 7, 0.5), seeded(specs, 7, 0.5)
    assert all(a[k].dtype == torch.float32 and torch.equal(a[k], b[k]) for k in a)
    assert (a["weight.m.bn1.running_var"] >= 0.5).all()
    assert not torch.equal(seeded(specs[::-1], 7, 0.5)["input.x"], a["input.x"])  # the order is part of the case
