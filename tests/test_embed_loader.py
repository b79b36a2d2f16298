"""Embedding through a DataLoader (issue #19 §4): workers decode while the model runs, and the
per-episode predictions and logits are identical for any number of workers (test-time decoding
is deterministic and the batches are the same), so `num_workers` is left out of the run key."""

from __future__ import annotations

import pytest

from fsar_bench.data import video
from fsar_bench.engine.evaluate import EvalOptions, evaluate
from toy_eval import toy_protonet_episodes


@pytest.mark.parametrize("cache", [True, False])
def test_predictions_identical_for_any_worker_count(workdir, monkeypatch, one_thread, cache):
    monkeypatch.setattr(video, "_CACHE_LIMIT", 0)  # decode every time, in the workers
    method, src, episodes = toy_protonet_episodes("loader-test", episodes=6 if not cache else 12)
    runs = {n: evaluate(method, src, episodes, options=EvalOptions(cache=cache, num_workers=n, batch_videos=4))
            for n in (0, 2)}
    assert list(runs[0]["preds"].map(tuple)) == list(runs[2]["preds"].map(tuple))
    assert list(runs[0]["logits"].map(lambda x: [list(r) for r in x])) == \
        list(runs[2]["logits"].map(lambda x: [list(r) for r in x]))  # bit-identical, not merely close
    assert len(runs[2]) == len(episodes.episodes)


def test_auto_workers_are_recorded_and_zero_on_cpu(workdir):
    from fsar_bench.config import load_config
    from fsar_bench.engine.runner import RunSpec, num_workers

    cfg = load_config()
    spec = RunSpec(method="protonet", dataset="toy-appearance")
    assert cfg["num_workers"] == "auto" and num_workers(spec, cfg, "cpu") == 0
    assert num_workers(RunSpec(method="protonet", dataset="toy-appearance", num_workers=3), cfg, "cpu") == 3
    assert num_workers(spec, cfg, "cuda") >= 0
