"""The statistics behind every reported number, on small inputs with hand-derived exact values.

Tolerance-based checks on random data ("p is about 0.25", "the CI contains the difference") let
off-by-one formulas through: a CI with sqrt(n - 1), a permutation p-value hits / n instead of
(1 + hits) / (1 + n), ranks that no longer tie. Every expected value below is written out from
the formula in the docstring of the code (docs/results.md), not computed by the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fsar_bench.results.stats import paired_comparison, paired_t, sign_flip_p


# -- accuracy and its 95% CI (summary.json: accuracy, accuracy_std, ci95) -----------------------
def test_accuracy_summary_exact_values():
    from fsar_bench.engine.evaluate import accuracy_summary

    # per-episode accuracies 0, 1/2, 1, 1 -> 0, 50, 100, 100 %: mean 62.5; squared deviations
    # 62.5^2 + 12.5^2 + 37.5^2 + 37.5^2 = 6875; sample std sqrt(6875 / 3); CI half-width 1.96 std / sqrt(4)
    df = pd.DataFrame({"episode": range(4), "accuracy": [0.0, 0.5, 1.0, 1.0]})
    s = accuracy_summary(df)
    assert s["episodes"] == 4
    assert s["accuracy"] == pytest.approx(62.5, abs=1e-12)
    assert s["accuracy_std"] == pytest.approx(math.sqrt(6875 / 3), rel=1e-12)
    assert s["ci95"] == pytest.approx(1.96 * math.sqrt(6875 / 3) / 2, rel=1e-12)  # 46.9139...
    assert s["ci95"] == pytest.approx(46.91393, abs=1e-5)


def test_accuracy_summary_one_episode_and_constant_runs():
    from fsar_bench.engine.evaluate import accuracy_summary

    one = accuracy_summary(pd.DataFrame({"episode": [0], "accuracy": [0.8]}))
    assert one["accuracy"] == pytest.approx(80.0) and one["accuracy_std"] == 0.0 and one["ci95"] == 0.0
    flat = accuracy_summary(pd.DataFrame({"episode": range(9), "accuracy": [0.2] * 9}))
    assert flat["accuracy"] == pytest.approx(20.0) and flat["ci95"] == pytest.approx(0.0, abs=1e-12)


# -- the permutation p-value: p = (1 + hits) / (1 + n_perm) ---------------------------------------
def test_sign_flip_p_counts_the_observed_statistic():
    """60 equal positive differences: a random sign vector reaches |mean| = 1 only if all 60 signs agree
    (probability 2^-59 per draw), so hits = 0 and p = (1 + 0) / (1 + n_perm) exactly."""
    d = np.ones(60)
    for n_perm, expected in ((99, 0.01), (1, 0.5), (3, 0.25), (9_999, 1e-4)):
        assert sign_flip_p(d, n_perm, np.random.default_rng(0)) == expected
    # one non-zero difference: every sign vector reaches |mean| (hits = n_perm), p = 1
    assert sign_flip_p(np.array([0.0, 2.0, 0.0]), 50, np.random.default_rng(0)) == 1.0
    assert sign_flip_p(np.zeros(5), 50, np.random.default_rng(0)) == 1.0  # no difference at all


def test_paired_comparison_exact_values():
    a = np.ones(60)  # A answers every query of 60 episodes, B none
    b = np.zeros(60)
    res = paired_comparison(a, b, n_boot=200, n_perm=99, seed=3)
    assert res["p_value"] == 0.01  # (1 + 0) / (1 + 99): never 0
    assert res["diff"] == 100.0 and res["mean_a"] == 100.0 and res["mean_b"] == 0.0
    assert res["ci_low"] == res["ci_high"] == 100.0  # every resample of a constant difference
    assert (res["a_better"], res["b_better"], res["ties"]) == (60, 0, 0)
    assert res["t_stat"] == math.inf and res["p_value_t"] == 0.0


def test_paired_t_exact_values():
    # d = 1, 2, 3 pp: mean 2, sample std 1, t = 2 / (1 / sqrt 3) = 2 sqrt 3, p = erfc(t / sqrt 2) = erfc(sqrt 6)
    t, p = paired_t(np.array([1.0, 2.0, 3.0]))
    assert t == pytest.approx(2 * math.sqrt(3), rel=1e-12)
    assert p == pytest.approx(math.erfc(math.sqrt(6)), rel=1e-9)
    res = paired_comparison(np.array([0.5, 0.5, 0.5]), np.array([0.49, 0.48, 0.47]), n_boot=0, n_perm=7)
    assert res["diff"] == pytest.approx(2.0) and res["diff_std"] == pytest.approx(1.0)
    assert res["t_stat"] == pytest.approx(2 * math.sqrt(3))
    # 3 non-zero differences, 2^3 sign vectors of which only all-plus / all-minus reach |mean| = 2
    assert 1 / 8 <= res["p_value"] <= 1.0 and (res["p_value"] * 8) % 1 == 0  # (1 + hits) / 8, hits in 0..7


# -- leaderboard ranks: equal accuracies share a rank (competition ranking 1, 2, 2, 2, 5) ------------
def _record(key: str, method: str, acc: float):
    """A ranked-table row without per-episode results (so no tiers), in either record layout."""
    try:
        from fsar_bench.results.record import Identity, Results, RunRecord
    except ImportError:  # the flat RunRecord of fsar_bench.leaderboard.reproduced (before results.record)
        from fsar_bench.leaderboard.reproduced import RunRecord

        return RunRecord(run_key=key, run_id=key, method=method, dataset="toy-motion", setting="5w1s", way=5,
                         shot=1, episodes=10_000, canonical=True, accuracy=acc, ci95=1.0)
    ident = Identity(run_key=key, method=method, dataset="toy-motion", way=5, shot=1, episodes=10_000,
                     canonical=True)
    return RunRecord(ident, results=Results(accuracy=acc, ci95=1.0), mlflow_run_id=key)


def _method(row) -> str:
    run = row.run
    return getattr(run, "identity", run).method


def test_tied_accuracies_share_a_rank():
    from fsar_bench.leaderboard.reproduced import rank

    rows = rank([_record("k1", "m1", 70.0), _record("k2", "m2", 80.0), _record("k3", "m3", 80.0),
                 _record("k4", "m4", 90.0), _record("k5", "m5", 80.0)])
    assert [(_method(r), r.rank) for r in rows] == [("m4", 1), ("m2", 2), ("m3", 2), ("m5", 2), ("m1", 5)]
    assert all(r.tier is None for r in rows)  # no per-episode results: no tiers
    two = rank([_record("a", "x", 55.5), _record("b", "y", 55.5)])
    assert [r.rank for r in two] == [1, 1]
