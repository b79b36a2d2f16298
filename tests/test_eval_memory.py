"""Scoring memory: big per-video features are scored in sub-batches that fit a byte budget."""

from __future__ import annotations

import torch

from fsar_bench.engine import evaluate as ev
from fsar_bench.engine.cache import FeatureStore
from toy_eval import toy_protonet_episodes


def test_scoring_batch_fits_budget():
    # DMGAL-FT's 8 x 2048 x 7 x 7 float maps (3.2 MB/video), 5-way 1-shot 1-query: 10 videos per episode
    row = 8 * 2048 * 7 * 7 * 4
    assert ev.scoring_batch(row, 10, 256 << 20) == 8
    assert ev.scoring_batch(row, 10, 1) == 1  # never zero
    assert ev.scoring_batch(8 * 64 * 4, 10, 256 << 20) > 500  # small features: batch_episodes is the bound


def test_row_bytes_memory_and_disk(tmp_path):
    feats = {"a": torch.zeros(3, 8, 16), "b": torch.zeros(3, 4)}
    for store in (FeatureStore(), FeatureStore(tmp_path / "s")):
        store.add(["x", "y", "z"], feats)
        assert store.row_bytes() == (8 * 16 + 4) * 4


def test_budget_changes_calls_not_results(workdir, monkeypatch):
    """A budget of one episode per matcher call gives the same logits as one call for all."""
    method, src, episodes = toy_protonet_episodes("memory-test")
    calls: list[int] = []
    score = method.score_batch

    def counting(q, *args, **kwargs):
        calls.append(q.shape[0] if isinstance(q, torch.Tensor) else next(iter(q.values())).shape[0])
        return score(q, *args, **kwargs)

    monkeypatch.setattr(method, "score_batch", counting)
    whole = ev.evaluate(method, src, episodes, options=ev.EvalOptions())
    assert calls == [12]
    calls.clear()
    tight = ev.evaluate(method, src, episodes, options=ev.EvalOptions(gather_budget=1))
    assert calls == [1] * 12
    assert list(whole["preds"].map(tuple)) == list(tight["preds"].map(tuple))
    for a, b in zip(whole["logits"], tight["logits"]):
        assert torch.allclose(torch.tensor(list(a)), torch.tensor(list(b)), atol=1e-5)
