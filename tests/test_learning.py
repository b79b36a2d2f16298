"""Learning really happens: trained ProtoNet beats the untrained one, 5-way 1-shot, on toy-appearance
(prototype matcher) and on the temporal toy-motion (OTAM matcher).

Measured on toy-motion (generator version 4, 1000 test episodes): 35% untrained, 70% trained with
OTAM; the order-blind prototype matcher reaches 41% trained (10,000 episodes: it sees a class and
its time reversal alike). toy-appearance (version 4): 27% untrained, 83% trained."""

from __future__ import annotations

import pytest

from fsar_bench.config import load_config
from fsar_bench.engine.runner import RunSpec, execute


@pytest.mark.parametrize(("dataset", "matcher", "floor"), [("toy-appearance", None, 0.0), ("toy-motion", "otam", 45.0)])
def test_trained_protonet_beats_untrained(dataset, matcher, floor, workdir, record_property):
    """The tiny preset's 150 training episodes, against the same weights untrained (chance: 20%)."""
    cfg = load_config()
    base = dict(method="protonet", dataset=dataset, matcher=matcher, episodes=1000)
    untrained = execute(RunSpec(**base, no_train=True), cfg, log=lambda s: None).summary
    trained = execute(RunSpec(**base), cfg, log=lambda s: None).summary  # the tiny preset's recipe
    record_property("untrained_accuracy", untrained["accuracy"])
    record_property("trained_accuracy", trained["accuracy"])
    print(f"{dataset}: untrained {untrained['accuracy']:.1f} +- {untrained['ci95']:.1f}; "
          f"trained {trained['accuracy']:.1f} +- {trained['ci95']:.1f}")
    margin = trained["accuracy"] - untrained["accuracy"]
    assert margin > 3 * (trained["ci95"] + untrained["ci95"]) and margin > 8
    assert trained["accuracy"] > floor
