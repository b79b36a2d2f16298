"""Paired comparison of runs: statistics, tiers, loading runs, and the `compare` command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fsar_bench.results.stats import paired_comparison, sign_flip_p, tiers


@pytest.fixture()
def compare_cli(cli):
    """The CLI runner as installed: `compare` must be mounted by fsar_bench/cli/app.py itself."""
    return cli


def _accs(p: float, n: int, seed: int, q: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).binomial(q, p, n) / q


def write_run(folder: Path, acc: np.ndarray, digest: str = "d" * 64, method: str = "m", q: int = 5,
              **extra) -> Path:
    """A fake finished run folder (summary.json + episodes.parquet) with the runner's columns."""
    folder.mkdir(parents=True)
    n = len(acc)
    correct = np.rint(np.asarray(acc) * q).astype(int)
    rows = [{"episode": i, "query_ids": [f"c{j}/v{i}-{j}" for j in range(q)], "labels": list(range(q)),
             "preds": [j if j < c else (j + 1) % q for j in range(q)], "logits": [[0.0] * q] * q, "n_query": q,
             "n_correct": int(c), "accuracy": c / q} for i, c in enumerate(correct)]
    pd.DataFrame(rows).to_parquet(folder / "episodes.parquet", index=False)
    a = correct / q * 100
    summary = {"accuracy": float(a.mean()), "accuracy_std": float(a.std(ddof=1)),
               "ci95": float(1.96 * a.std(ddof=1) / np.sqrt(n)), "episodes": n, "method": method, "matcher": "proto",
               "preset": "tiny", "dataset": "toy-motion", "setting": "5w1s", "episode_digest": digest,
               "canonical": True, "weights_source": "random-init", **extra}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


# -- statistics --------------------------------------------------------------------------------
def test_known_difference_is_detected():
    a = _accs(0.6, 2000, 1)
    rng = np.random.default_rng(2)
    b = np.clip(a - 0.2 * rng.binomial(1, 0.15, a.size), 0, 1)  # B loses one query in ~15% of episodes
    res = paired_comparison(a, b, n_boot=2000, seed=0)
    true = (a - b).mean() * 100
    assert res["diff"] == pytest.approx(true)
    assert res["mean_a"] - res["mean_b"] == pytest.approx(true)
    assert 0 < res["ci_low"] < true < res["ci_high"]
    assert res["p_value"] < 0.001 and res["p_value_t"] < 0.001
    assert res["b_better"] == 0 and res["a_better"] + res["ties"] == 2000 and res["a_better"] > 0
    again = paired_comparison(a, b, n_boot=2000, seed=0)
    assert again == res  # fixed seed: reproducible to the bit


def test_identical_runs():
    a = _accs(0.5, 500, 3)
    res = paired_comparison(a, a.copy())
    assert res["diff"] == 0 and res["p_value"] == 1.0 and res["p_value_t"] == 1.0
    assert res["ci_low"] == res["ci_high"] == 0
    assert res["ties"] == 500 and res["a_better"] == res["b_better"] == 0


def test_no_real_difference_is_not_significant():
    """A and B trade single queries: A wins one query more in 105 episodes, B in 95, out of 1,000.
    The per-episode differences are 105 x (+20), 95 x (-20) and 800 x 0 pp, so (by hand) the mean is
    0.2 pp, the sum of squared deviations 200 * 20^2 - 1000 * 0.2^2 = 79,960 and t = 0.2 / sqrt(79960 /
    999 / 1000) = 0.707: clearly not significant, and the CI must cover 0."""
    base = _accs(0.55, 1000, 4)
    room = np.flatnonzero(base <= 0.8)  # episodes where one more correct query still fits
    a, b = base.copy(), base.copy()
    a[room[:105]] += 0.2
    b[room[105:200]] += 0.2
    res = paired_comparison(a, b, n_boot=4000)
    t = 0.2 / math.sqrt(79_960 / 999 / 1000)
    assert res["diff"] == pytest.approx(0.2) and res["diff_std"] == pytest.approx(math.sqrt(79_960 / 999))
    assert (res["a_better"], res["b_better"], res["ties"]) == (105, 95, 800)
    assert res["t_stat"] == pytest.approx(t) and res["p_value_t"] == pytest.approx(math.erfc(t / math.sqrt(2)))
    assert res["ci_low"] < 0 < res["ci_high"]  # the CI covers "no difference"
    half = 1.96 * math.sqrt(79_960 / 1000) / math.sqrt(1000)  # normal approximation of the bootstrap CI
    assert (res["ci_high"] - res["ci_low"]) / 2 == pytest.approx(half, rel=0.1)
    assert res["p_value"] > 0.3
    assert res["p_value"] == pytest.approx(res["p_value_t"], abs=0.05)  # the two tests agree at this n


def test_sign_flip_exact_small_case():
    # d = [1, 1, 1]: 2 of the 8 sign vectors reach |mean| = 1, so the exact p is 1/4.
    rng = np.random.default_rng(0)
    p = sign_flip_p(np.array([1.0, 1.0, 1.0]), 20_000, rng)
    assert p == pytest.approx(0.25, abs=0.01)


def test_bad_inputs():
    with pytest.raises(ValueError, match="fractions"):
        paired_comparison(np.array([50.0, 60.0]), np.array([0.5, 0.6]))
    with pytest.raises(ValueError, match="same episodes"):
        paired_comparison(np.zeros(3), np.zeros(4))


def test_tiers():
    base = _accs(0.6, 3000, 10)
    rng = np.random.default_rng(11)
    lose = lambda p: np.clip(base - 0.2 * rng.binomial(1, p, base.size), 0, 1)  # noqa: E731
    rows = [("c", lose(0.30)), ("best", base), ("near", lose(0.002)), ("b", lose(0.10)), ("b2", lose(0.11))]
    assert tiers(rows) == [3, 1, 1, 2, 2]  # input order kept; 'near' is not significantly below 'best'
    assert tiers([]) == []
    assert tiers([("only", base)]) == [1]
    assert tiers([("x", base), ("y", base.copy())]) == [1, 1]
    # Chain rule: each step is small, but the row far below the tier head starts a new tier.
    chain = [("t0", base), ("t1", lose(0.01)), ("t2", lose(0.02)), ("t3", lose(0.2))]
    assert tiers(chain)[0] == 1 and tiers(chain)[-1] > 1
    with pytest.raises(ValueError, match="same episodes"):
        tiers([("x", base), ("y", base[:10])])


# -- loading runs and the command ---------------------------------------------------------------
def test_load_run_folder(tmp_path):
    from fsar_bench.results.runs import load_run

    acc = _accs(0.5, 50, 6)
    folder = write_run(tmp_path / "run", acc)
    summary, df = load_run(folder)
    assert summary["episode_digest"] == "d" * 64
    assert list(df["episode"]) == list(range(50)) and np.allclose(df["accuracy"], acc)
    summary2, _ = load_run(folder / "summary.json")
    assert summary2 == summary


def test_compare_cli(tmp_path, compare_cli):
    a = _accs(0.6, 400, 7)
    b = np.clip(a - 0.2 * np.random.default_rng(8).binomial(1, 0.3, a.size), 0, 1)
    # untrained runs (zero-shot, --no-train): no seed variance, the paired episode test decides
    ra = write_run(tmp_path / "a", a, method="alpha", trained=False)
    rb = write_run(tmp_path / "b", b, method="beta", trained=False)
    res = compare_cli("compare", ra, rb, "--n-boot", "1000")
    assert res.code == 0, res.err
    assert "alpha" in res.out and "beta" in res.out and "95% CI" in res.out
    verdict = [line for line in res.out.splitlines() if line.startswith("verdict:")]
    assert len(verdict) == 1 and "A is significantly better than B" in verdict[0]
    same = compare_cli("compare", ra, ra, "--n-boot", "200")
    assert same.code == 0 and "no significant difference" in same.out
    # the same numbers from two trained single runs: training variance unmeasured, never "significantly"
    ta = write_run(tmp_path / "ta", a, method="m", trained=True, train_seed="0", run_key="k" * 12)
    tb = write_run(tmp_path / "tb", b, method="m", trained=True, train_seed="1", run_key="j" * 12)
    res = compare_cli("compare", ta, tb, "--n-boot", "200", "--n-perm", "200")
    assert res.code == 0, res.err
    verdict = [line for line in res.out.splitlines() if line.startswith("verdict:")][0]
    assert "not testable for training variance" in verdict and "significantly" not in verdict
    doc = json.loads(compare_cli("compare", ta, tb, "--n-boot", "50", "--n-perm", "50", "--json").out)
    assert doc["a"]["label"].endswith("[seed 0]") and doc["b"]["label"].endswith("[seed 1]")  # labelled apart
    assert doc["significant"] is False and doc["group"]["testable"] is False


def test_compare_groups_cli(tmp_path, compare_cli):
    """Groups on each side (comma-separated runs, and a group folder): the seed-aware t test decides.
    Seed effects of +-4 pp dwarf a 1 pp difference between the groups: not significant, although the
    episode-only test of the pooled means would call it significant."""
    rng = np.random.default_rng(3)
    base = rng.binomial(5, 0.5, 2000) / 5

    def replicate(shift: float, seed: int) -> np.ndarray:
        flip = np.random.default_rng(seed).random(base.size) < abs(shift)
        return np.clip(base + np.sign(shift) * 0.2 * flip, 0, 1)

    runs_a = [write_run(tmp_path / f"a{i}", replicate(s, i), trained=True, train_seed=str(i), group_key="ga")
              for i, s in enumerate((0.2, -0.2, 0.25))]
    runs_b = [write_run(tmp_path / f"b{i}", replicate(s, 10 + i), trained=True, train_seed=f"x{i}", group_key="gb")
              for i, s in enumerate((-0.25, 0.2, -0.15))]
    group = tmp_path / "g-b"
    group.mkdir()
    (group / "group.json").write_text(json.dumps({"replicates": [{"run_dir": str(r)} for r in runs_b]}))
    res = compare_cli("compare", ",".join(map(str, runs_a)), group, "--n-boot", "200", "--n-perm", "200", "--json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert doc["group"]["testable"] and doc["group"]["replicates_a"] == 3 and doc["group"]["replicates_b"] == 3
    assert doc["p_value"] < 0.05 and not doc["significant"]  # episodes alone would say "significant"
    assert doc["verdict"].startswith("no significant difference")
    assert doc["a"]["seeds"] == ["0", "1", "2"] and doc["b"]["seeds"] == ["x0", "x1", "x2"]
    mixed = compare_cli("compare", f"{runs_a[0]},{runs_b[0]}", group)
    assert mixed.code == 2 and "not replicates of one command" in mixed.err


def test_compare_refuses_different_episodes(tmp_path, compare_cli):
    ra = write_run(tmp_path / "a", _accs(0.5, 30, 1), digest="a" * 64)
    rb = write_run(tmp_path / "b", _accs(0.5, 30, 2), digest="b" * 64)
    res = compare_cli("compare", ra, rb)
    assert res.code == 2
    lines = [line for line in res.err.splitlines() if line.strip()]
    assert len(lines) == 1, res.err
    assert lines[0] == (f"error: runs were evaluated on different episodes (digest {'a' * 16} vs {'b' * 16}); "
                        "compare runs on the same canonical set")


def test_compare_bad_refs(tmp_path, compare_cli):
    res = compare_cli("compare", tmp_path / "nope", tmp_path / "nope2")
    assert res.code == 2 and "neither a run folder nor an MLflow run id" in res.err
    (tmp_path / "half").mkdir()
    res = compare_cli("compare", tmp_path / "half", tmp_path / "half")
    assert res.code == 2 and "has no summary.json" in res.err
    res = compare_cli("compare", "0" * 32, tmp_path / "half", "--tracking-uri", f"sqlite:///{tmp_path}/none.db")
    assert res.code == 2 and "no MLflow store" in res.err
    ra = write_run(tmp_path / "a", _accs(0.5, 30, 1))
    rb = write_run(tmp_path / "b", _accs(0.5, 20, 2))
    res = compare_cli("compare", ra, rb)
    assert res.code == 2 and "different episode lists" in res.err


def test_compare_by_mlflow_run_id(tmp_path, tracking_uri, compare_cli):
    from fsar_bench.results.runs import load_run
    from fsar_bench.tracking import Tracker

    acc = _accs(0.5, 40, 9)
    folder = write_run(tmp_path / "a", acc)
    tracker = Tracker(tracking_uri, "test-compare", tmp_path / "mlartifacts")
    run_id = tracker.start("fake", {"method": "m"}, {})
    tracker.log_artifact(folder / "episodes.parquet")
    tracker.log_artifact(folder / "summary.json")
    tracker.end()
    summary, df = load_run(run_id, tracking_uri=tracking_uri)
    assert summary["episode_digest"] == "d" * 64 and np.allclose(df["accuracy"], acc)
    res = compare_cli("compare", run_id, folder, "--tracking-uri", tracking_uri, "--n-boot", "100")
    assert res.code == 0, res.err
    assert "+0.00 pp" in res.out and "not testable for training variance" in res.out
    missing = compare_cli("compare", "f" * 32, folder, "--tracking-uri", tracking_uri)
    assert missing.code == 2 and "no MLflow run" in missing.err
