"""Paired statistics over per-episode accuracies of runs evaluated on the SAME episodes.

Two methods scored on the same canonical episodes are compared episode by episode: the
per-episode differences d_i = acc_A(i) - acc_B(i) remove the episode-difficulty variance that
dominates the unpaired 95% CIs of a leaderboard (two methods whose CIs overlap can still differ
significantly on paired data).

* Mean difference, in percentage points (accuracies are fractions in [0, 1], as in
  `episodes.parquet`; everything reported is x 100).
* 95% CI of the mean difference: paired percentile bootstrap (resample episodes with
  replacement, `n_boot` times, numpy Generator seeded with `seed`; with few distinct per-episode
  differences, drawn as multinomial counts of them: the same distribution, much faster).
* p-value (primary): two-sided sign-flip permutation test of the mean difference. Under the null
  hypothesis that A and B are exchangeable within each episode, each d_i is as likely to be -d_i;
  `n_perm` random sign-flip vectors give the null distribution of mean(d), and
  p = (1 + #{|mean(s * d)| >= |mean(d)|}) / (1 + n_perm) (never 0; at least 1 / (1 + n_perm)).
* p-value (secondary): paired t statistic t = mean(d) / (std(d) / sqrt(n)) with a normal
  approximation (fine for the thousands of episodes of the protocol; no scipy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

_CHUNK_CELLS = 4_000_000  # random draws per chunk (~32 MB of int64), whatever n and n_boot are
_MAX_DISTINCT = 64  # bootstrap by multinomial counts of distinct values up to this many values


def _as_fractions(acc: Any, name: str) -> np.ndarray:
    arr = np.asarray(acc, dtype=float).ravel()
    if arr.size and (np.isnan(arr).any() or arr.min() < -1e-9 or arr.max() > 1 + 1e-9):
        raise ValueError(f"{name}: per-episode accuracies must be fractions in [0, 1] (as in episodes.parquet)")
    return arr


def _streams(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for the bootstrap and the permutation test (changing one's size
    does not change the other's draws)."""
    boot, perm = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(boot), np.random.default_rng(perm)


def bootstrap_means(d: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of `n_boot` resamples (with replacement) of the n entries of `d`.

    When `d` takes few distinct values (per-episode differences are multiples of 100/Q pp with Q
    queries per episode), each resample is drawn as multinomial counts of those values (n draws,
    probabilities count / n): the same distribution as resampling n episode indices, and much
    cheaper. Otherwise episode indices are resampled directly.
    """
    n = d.size
    values, counts = np.unique(d, return_counts=True)
    out = np.empty(n_boot)
    by_value = values.size <= _MAX_DISTINCT
    step = max(1, _CHUNK_CELLS // (values.size if by_value else n))
    for start in range(0, n_boot, step):
        k = min(step, n_boot - start)
        if by_value:
            out[start:start + k] = rng.multinomial(n, counts / n, size=k) @ values / n
        else:
            out[start:start + k] = d[rng.integers(0, n, size=(k, n))].mean(axis=1)
    return out


def sign_flip_p(d: np.ndarray, n_perm: int, rng: np.random.Generator) -> float:
    """Two-sided sign-flip permutation p-value of mean(d) = 0 (see the module docstring)."""
    n = d.size
    if n == 0:
        return float("nan")
    observed = abs(d.mean())
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    nz = d[d != 0]  # ties flip to themselves: only the non-zero differences need signs
    if nz.size == 0:
        return 1.0
    hits = 0
    step = max(1, _CHUNK_CELLS // nz.size)
    for start in range(0, n_perm, step):
        k = min(step, n_perm - start)
        signs = rng.integers(0, 2, size=(k, nz.size), dtype=np.int8) * 2 - 1
        hits += int((np.abs(signs @ nz / n) >= observed - tol).sum())
    return (1 + hits) / (1 + n_perm)


def paired_t(d: np.ndarray) -> tuple[float, float]:
    """Paired t statistic and its two-sided p-value under a normal approximation."""
    n = d.size
    if n < 2:
        return float("nan"), float("nan")
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0.0:
        return (0.0, 1.0) if mean == 0.0 else (math.copysign(math.inf, mean), 0.0)
    t = mean / (sd / math.sqrt(n))
    return t, math.erfc(abs(t) / math.sqrt(2.0))


def paired_comparison(acc_a: np.ndarray, acc_b: np.ndarray, n_boot: int = 10_000, seed: int = 0,
                      n_perm: int = 10_000, confidence: float = 0.95) -> dict[str, Any]:
    """Compare A and B on the same episodes (index i of both arrays is the same episode).

    `acc_a`, `acc_b`: per-episode accuracies as fractions in [0, 1]. Returns (in percentage points):
    episodes, mean_a, mean_b, diff (mean_a - mean_b), diff_std (per-episode std of the difference),
    ci_low, ci_high (paired-bootstrap CI of diff at `confidence`), p_value (primary: sign-flip
    permutation test, two-sided), p_test ('sign-flip permutation'), n_boot, n_perm, seed, t_stat,
    p_value_t (paired t, normal approximation), a_better, b_better, ties (episode counts).
    """
    a, b = _as_fractions(acc_a, "acc_a"), _as_fractions(acc_b, "acc_b")
    if a.shape != b.shape:
        raise ValueError(f"paired comparison needs the same episodes: {a.size} vs {b.size} accuracies")
    if a.size == 0:
        raise ValueError("paired comparison of zero episodes")
    if n_boot < 0 or n_perm < 1:
        raise ValueError(f"need n_boot >= 0 and n_perm >= 1 (got {n_boot}, {n_perm})")
    d = (a - b) * 100.0
    boot_rng, perm_rng = _streams(seed)
    if n_boot:
        boots = bootstrap_means(d, n_boot, boot_rng)
        tail = (1.0 - confidence) / 2.0 * 100.0
        lo, hi = (float(x) for x in np.percentile(boots, [tail, 100.0 - tail]))
    else:
        lo = hi = float("nan")
    t, p_t = paired_t(d)
    return {
        "episodes": int(d.size),
        "mean_a": float(a.mean() * 100.0),
        "mean_b": float(b.mean() * 100.0),
        "diff": float(d.mean()),
        "diff_std": float(d.std(ddof=1)) if d.size > 1 else 0.0,
        "ci_low": lo,
        "ci_high": hi,
        "confidence": confidence,
        "p_value": sign_flip_p(d, n_perm, perm_rng),
        "p_test": "sign-flip permutation (two-sided)",
        "t_stat": t,
        "p_value_t": p_t,
        "n_boot": int(n_boot),
        "n_perm": int(n_perm),
        "seed": int(seed),
        "a_better": int((d > 0).sum()),
        "b_better": int((d < 0).sum()),
        "ties": int((d == 0).sum()),
    }


def tiers(results: Sequence[tuple[str, np.ndarray]], alpha: float = 0.05, n_perm: int = 10_000,
          seed: int = 0) -> list[int]:
    """Significance tiers (1 = best) of runs evaluated on the same episodes, in the INPUT order.

    Rule: sort the rows by mean accuracy, best first (ties keep the input order). The first row
    opens tier 1 and is its head. Walking down, a row opens a new tier (and becomes its head)
    only if it is significantly worse than the head of the current tier: mean lower and the
    paired sign-flip p-value against the head < `alpha`. Otherwise it joins the current tier.
    Comparing with the head (not the previous row) stops a chain of small non-significant steps
    from keeping a clearly worse method in the top tier. No multiple-comparison correction: a tier
    boundary is a "significant at alpha against the tier head" statement, nothing more.
    """
    if not results:
        return []
    arrays = [_as_fractions(acc, name) for name, acc in results]
    n = arrays[0].size
    for (name, _), arr in zip(results, arrays):
        if arr.size != n:
            raise ValueError(f"tiers need the same episodes for every row: {name!r} has {arr.size}, "
                             f"{results[0][0]!r} has {n}")
    means = [float(arr.mean()) for arr in arrays]
    order = sorted(range(len(arrays)), key=lambda i: -means[i])  # stable: ties keep input order
    out = [0] * len(arrays)
    tier, head = 1, order[0]
    out[head] = tier
    for i in order[1:]:
        d = (arrays[head] - arrays[i]) * 100.0
        _, rng = _streams(seed)  # each test gets the same draws: results do not depend on row order
        if means[i] < means[head] and sign_flip_p(d, n_perm, rng) < alpha:
            tier += 1
            head = i
        out[i] = tier
    return out
