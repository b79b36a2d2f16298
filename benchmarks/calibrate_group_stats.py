"""Calibration of the replicate-group statistics (docs/statistics.md §2.4 and §3), at any size.

    python benchmarks/calibrate_group_stats.py                     # the figures quoted in the docs
    python benchmarks/calibrate_group_stats.py --episodes 10000    # full canonical episode count (slower)

Simulates groups like the issue #17 toy (5-way 1-shot, 1 query per class: per-episode accuracy
k/5, k ~ Binomial(5, p); p = mu + seed effect N(0, 4.6 pp) + episode difficulty N(0, 10 pp),
clipped to [0, 1]; difficulty shared by both groups of a pair) and prints:

* coverage of the hierarchical 95% CI (eq. 6) and of the two-level percentile bootstrap, with a
  fresh episode set and fresh seeds per simulation (mu = 0.6: no clipping, true mean known);
* false-positive rate and power (2 between-seed SDs) of `compare_groups` at alpha = 0.05, and the
  false-positive rate of the episode-only paired t test between single seeds.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from fsar_bench.results.groups import compare_groups, summarize_group, two_level_bootstrap
from fsar_bench.results.stats import paired_t

SEED_SD, DIFFICULTY_SD = 0.046, 0.10


def simulate(rng: np.random.Generator, n: int, seeds: int, mu: float, difficulty: np.ndarray) -> np.ndarray:
    s = rng.normal(0.0, SEED_SD, size=(n, seeds, 1))
    return rng.binomial(5, np.clip(mu + s + difficulty, 0.0, 1.0)) / 5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=1000)
    ap.add_argument("--boot-sims", type=int, default=300, help="simulations for the (slower) bootstrap coverage")
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    n, e, r = args.sims, args.episodes, args.seeds

    groups = simulate(rng, n, r, 0.6, rng.normal(0.0, DIFFICULTY_SD, size=(n, 1, e)))
    cov_t = np.mean([lo <= 60 <= hi for lo, hi in (summarize_group(g).hierarchical_ci for g in groups)])
    boots = [np.percentile(two_level_bootstrap(g, 1000, seed=i), [2.5, 97.5])
             for i, g in enumerate(groups[:args.boot_sims])]
    cov_b = np.mean([lo <= 60 <= hi for lo, hi in boots])
    print(f"coverage of the 95% CI, {r} seeds x {e} episodes: t interval (eq. 6) {cov_t:.3f} ({n} sims), "
          f"two-level percentile bootstrap {cov_b:.3f} ({len(boots)} sims)")

    difficulty = rng.normal(0.0, DIFFICULTY_SD, size=(n, 1, e))
    a = simulate(rng, n, r, 0.75, difficulty)
    b0 = simulate(rng, n, r, 0.75, difficulty)
    b2 = simulate(rng, n, r, 0.75 - 2 * SEED_SD, difficulty)
    fpr = np.mean([compare_groups(a[i], b0[i]).significant() for i in range(n)])
    power = np.mean([compare_groups(a[i], b2[i]).significant() for i in range(n)])
    ep = np.mean([paired_t((a[i, 0] - b0[i, 0]) * 100)[1] < 0.05 for i in range(n)])
    mc = math.sqrt(0.05 * 0.95 / n)
    print(f"compare_groups, {r} vs {r} seeds, alpha 0.05: false-positive rate {fpr:.3f} (MC-SE {mc:.3f}), "
          f"power at a 2-SD shift {power:.3f}; episode-only paired t between single seeds: FPR {ep:.3f}")


if __name__ == "__main__":
    main()
