"""Statistics over replicate groups: runs of one command that differ only in the training seed.

A run's printed 95% CI covers episode sampling only; retraining with another seed moves the
accuracy far more (issue #17: five seeds of one toy command span 11.5 pp while each run prints
+-0.38 pp). A *group* is an [R replicates x E episodes] matrix of per-episode accuracies (fractions
in [0, 1], the same E canonical episodes in every row). Model (two-way random effects, no
replication; docs/statistics.md, eq. (1)):

    a[r, e] = mu + s_r + d_e + g[r, e]        s_r seed, d_e episode difficulty, g residual

From the mean squares of that table (eq. (2)) follow the variance of the group mean and its split
into a seed part and an episode part (eq. (3)-(5)), the hierarchical CI (eq. (6), t interval with
Satterthwaite degrees of freedom) and the seed-aware comparison of two groups on shared episodes
(eq. (7)-(9)). With one replicate nothing about training variance is measurable, and the functions
say so instead of returning an episode-only answer. Everything is reported in percentage points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from fsar_bench.errors import FsarError

ONE_SEED = "1 seed: training variance unmeasured"
NOT_TESTABLE = "not testable for training variance"


# -- input -------------------------------------------------------------------------------------

def as_group(acc: Any, name: str = "group") -> np.ndarray:
    """[R, E] per-episode accuracies in pp from fractions in [0, 1]; a 1-D array is one replicate."""
    arr = np.asarray(acc, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] < 1:
        raise FsarError(f"{name}: expected [replicates x episodes] accuracies, got shape {arr.shape}",
                        "stack the per-episode accuracies of each seed's run as one row")
    if arr.shape[1] < 2:
        raise FsarError(f"{name}: {arr.shape[1]} episode(s); the statistics need at least 2",
                        "evaluate on the canonical episode set")
    if not np.isfinite(arr).all() or arr.min() < -1e-9 or arr.max() > 1 + 1e-9:
        raise FsarError(f"{name}: per-episode accuracies must be finite fractions in [0, 1]",
                        "pass the 'accuracy' column of episodes.parquet")
    return arr * 100.0


def stack_replicates(runs: Sequence[tuple[str, Any]]) -> np.ndarray:
    """Rows = the per-episode accuracies (episode order) of each (label, accuracies) run; all
    runs must have been scored on the same episodes (equal episode digests: the caller checks)."""
    if not runs:
        raise FsarError("a replicate group needs at least one run", "pass the runs of the group")
    rows = [np.asarray(acc, dtype=float).ravel() for _, acc in runs]
    for (label, _), row in zip(runs, rows):
        if row.size != rows[0].size:
            raise FsarError(f"run {label!r} has {row.size} episodes, {runs[0][0]!r} has {rows[0].size}",
                            "group only runs evaluated on the same episode set (same episode_digest)")
    return np.stack(rows)


# -- Student t (no scipy in the dependencies) ---------------------------------------------------

def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        for aa in (m * (b - m) * x / ((a - 1.0 + 2 * m) * (a + 2 * m)),
                   -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 1.0 + 2 * m))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's T with `df` (> 0, may be fractional) degrees of freedom."""
    if math.isinf(t):
        return 0.0
    if math.isinf(df) or df > 1e7:
        return math.erfc(abs(t) / math.sqrt(2.0))
    return _betainc(df / 2.0, 0.5, df / (df + t * t))


def t_quantile(q: float, df: float) -> float:
    """The q-quantile (q > 0.5) of Student's T with `df` degrees of freedom (bisection on the CDF)."""
    if not 0.5 < q < 1.0:
        raise ValueError(f"t_quantile needs 0.5 < q < 1, got {q}")
    alpha = 2.0 * (1.0 - q)
    if math.isinf(df) or df > 1e7:
        return NormalDist().inv_cdf(q)
    lo, hi = 0.0, 2.0
    while t_two_sided_p(hi, df) > alpha:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_two_sided_p(mid, df) > alpha else (lo, mid)
        if hi - lo < 1e-12 * hi:
            break
    return 0.5 * (lo + hi)


# -- one group ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Anova:
    """Mean squares of the two-way [seed x episode] table (pp^2), docs/statistics.md eq. (2)."""

    replicates: int
    episodes: int
    grand_mean: float
    row_means: np.ndarray  # per-replicate mean accuracy
    col_means: np.ndarray  # per-episode mean over replicates
    ms_seed: float  # E * var(row means); nan when R = 1
    ms_episode: float  # R * var(col means)
    ms_resid: float  # interaction + within-episode noise; nan when R = 1


def anova(a: np.ndarray) -> Anova:
    """Two-way ANOVA without replication of an [R, E] matrix (pp)."""
    r, e = a.shape
    rows, cols = a.mean(axis=1), a.mean(axis=0)
    grand = float(rows.mean())
    ms_episode = r * float(cols.var(ddof=1))
    if r < 2:
        return Anova(r, e, grand, rows, cols, float("nan"), ms_episode, float("nan"))
    resid = a - rows[:, None] - cols[None, :] + grand
    ms_resid = float((resid ** 2).sum()) / ((r - 1) * (e - 1))
    return Anova(r, e, grand, rows, cols, e * float(rows.var(ddof=1)), ms_episode, ms_resid)


def _seed_component(av: Anova) -> float:
    """sigma_s^2 / R estimated as (MS_seed - MS_resid) / (R E), clipped at 0 (eq. (4))."""
    return max(0.0, (av.ms_seed - av.ms_resid) / (av.replicates * av.episodes))


def _seed_df_terms(av: Anova) -> float:
    """Satterthwaite denominator terms of the seed component (0 when it was clipped to 0)."""
    if _seed_component(av) == 0.0:
        return 0.0
    r, e = av.replicates, av.episodes
    return (av.ms_seed / (r * e)) ** 2 / (r - 1) + (av.ms_resid / (r * e)) ** 2 / ((r - 1) * (e - 1))


@dataclass(frozen=True)
class GroupSummary:
    """What a replicate group reports (pp; docs/statistics.md §2). None = not measurable (R = 1)."""

    replicates: int
    episodes: int
    mean: float  # mean over replicates and episodes
    replicate_means: tuple[float, ...]
    seed_sd: float | None  # SD of the replicate means (ddof 1)
    episode_ci: tuple[float, float]  # episode-sampling CI of the mean (eq. (5))
    hierarchical_ci: tuple[float, float] | None  # seeds + episodes (eq. (6))
    hierarchical_df: float | None
    var_seed: float | None  # component of Var(group mean) from training seeds
    var_episode: float  # component of Var(group mean) from episode sampling
    seed_share: float | None  # var_seed / (var_seed + var_episode)
    seed_share_single_run: float | None  # the same share for the accuracy of ONE run (R = 1)
    confidence: float

    @property
    def flag(self) -> str | None:
        """The leaderboard/CLI warning for single-seed groups."""
        return ONE_SEED if self.replicates < 2 else None

    def lines(self) -> list[str]:
        """Human-readable report lines (CLI, logs)."""
        pct = f"{self.confidence * 100:g}%"
        lo, hi = self.episode_ci
        out = [f"mean {self.mean:.2f} % over {self.replicates} seed(s) x {self.episodes} episodes",
               f"episode-sampling {pct} CI: [{lo:.2f}, {hi:.2f}] (+-{(hi - lo) / 2:.2f})"]
        if self.replicates < 2:
            out.append(f"{ONE_SEED}: the CI above covers episode sampling only; rerun with more seeds "
                       "(e.g. --seeds 5) to measure it")
            return out
        hlo, hhi = self.hierarchical_ci  # type: ignore[misc]
        out += [f"between-seed SD {self.seed_sd:.2f} pp",
                f"hierarchical {pct} CI (seeds + episodes): [{hlo:.2f}, {hhi:.2f}] (+-{(hhi - hlo) / 2:.2f}, "
                f"t with {self.hierarchical_df:.1f} df)",
                f"training seeds cause {self.seed_share * 100:.1f}% of the variance of this group mean "
                f"({self.seed_share_single_run * 100:.1f}% of a single run's)"]
        return out

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (lists for tuples; None stays null)."""
        out = asdict(self)
        for k, v in out.items():
            if isinstance(v, tuple):
                out[k] = list(v)
        out["flag"] = self.flag
        return out


def summarize_group(acc: Any, confidence: float = 0.95) -> GroupSummary:
    """Mean, between-seed SD, episode-sampling CI, hierarchical CI and variance split of a group.

    `acc`: [R, E] fractions (or 1-D for one run). Formulas: docs/statistics.md eq. (2)-(6).
    """
    a = as_group(acc)
    av = anova(a)
    r, e = av.replicates, av.episodes
    var_ep = av.ms_episode / (r * e)  # = var(col means) / E
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    ep_half = z * math.sqrt(var_ep)
    ep_ci = (av.grand_mean - ep_half, av.grand_mean + ep_half)
    means = tuple(float(m) for m in av.row_means)
    if r < 2:
        return GroupSummary(
            replicates=r, episodes=e, mean=av.grand_mean, replicate_means=means, seed_sd=None, episode_ci=ep_ci,
            hierarchical_ci=None, hierarchical_df=None, var_seed=None, var_episode=var_ep, seed_share=None,
            seed_share_single_run=None, confidence=confidence)
    var_seed = _seed_component(av)
    total = var_seed + var_ep
    denom = _seed_df_terms(av) + var_ep ** 2 / (e - 1)
    df = total ** 2 / denom if denom > 0 else math.inf
    half = t_quantile(0.5 + confidence / 2.0, df) * math.sqrt(total) if total > 0 else 0.0
    # One run (eq. (5')): sigma_s^2 + the mean over replicates of each run's own var(episodes) / E.
    single_seed = r * var_seed
    single_ep = (av.ms_episode + (r - 1) * av.ms_resid) / (r * e)
    return GroupSummary(
        replicates=r, episodes=e, mean=av.grand_mean, replicate_means=means,
        seed_sd=float(av.row_means.std(ddof=1)), episode_ci=ep_ci,
        hierarchical_ci=(av.grand_mean - half, av.grand_mean + half), hierarchical_df=df,
        var_seed=var_seed, var_episode=var_ep, seed_share=var_seed / total if total > 0 else 0.0,
        seed_share_single_run=single_seed / (single_seed + single_ep) if single_seed + single_ep > 0 else 0.0,
        confidence=confidence)


def two_level_bootstrap(acc: Any, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Group means (pp) of `n_boot` two-level bootstrap resamples: R replicates drawn with
    replacement, then E episodes drawn with replacement JOINTLY for all replicates (they share the
    episodes, so resampling them per replicate would break the pairing); replicate draws as
    multinomial counts w: mean = sum_r w_r sum_j a[r, e*_j] / (R E). A cross-check of eq. (3);
    docs/statistics.md §2.4 says why the reported CI is the t interval instead."""
    a = as_group(acc)
    r, e = a.shape
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    step = max(1, 4_000_000 // (r * e))
    for start in range(0, n_boot, step):
        k = min(step, n_boot - start)
        w = rng.multinomial(r, np.full(r, 1.0 / r), size=k)  # [k, R] replicate counts
        idx = rng.integers(0, e, size=(k, e))  # the same episode draw for every replicate
        row_sums = np.stack([row[idx].sum(axis=1) for row in a], axis=1)  # [k, R]
        out[start:start + k] = (row_sums * w).sum(axis=1) / (r * e)
    return out


# -- two groups --------------------------------------------------------------------------------

@dataclass(frozen=True)
class GroupComparison:
    """Seed-aware comparison of group A and group B on shared episodes (pp; eq. (7)-(9))."""

    replicates_a: int
    replicates_b: int
    episodes: int
    mean_a: float
    mean_b: float
    diff: float  # mean_a - mean_b
    testable: bool  # False when either group has one replicate
    reason: str  # why not testable ('' when testable)
    se: float | None  # standard error of diff (seeds + paired episode sampling)
    df: float | None  # Satterthwaite degrees of freedom
    t_stat: float | None
    p_value: float | None  # two-sided
    ci: tuple[float, float] | None  # CI of diff at `confidence`
    var_seed_a: float | None
    var_seed_b: float | None
    var_episode: float  # paired episode-sampling variance of diff
    episode_only_ci: tuple[float, float]  # CI of diff for THESE trained models (episodes only)
    confidence: float
    test: str = "Welch-Satterthwaite t on group means, seed + paired-episode variance"

    def significant(self, alpha: float = 0.05) -> bool:
        return bool(self.testable and self.p_value is not None and self.p_value < alpha)

    def verdict(self, alpha: float = 0.05) -> str:
        """One line for the CLI."""
        if not self.testable:
            lo, hi = self.episode_only_ci
            return (f"{NOT_TESTABLE} ({self.reason}); A - B = {self.diff:+.2f} pp, [{lo:+.2f}, {hi:+.2f}] over "
                    "episodes for these trained models only: retraining may reverse it")
        lo, hi = self.ci  # type: ignore[misc]
        head = (f"A is significantly {'better' if self.diff > 0 else 'worse'} than B" if self.significant(alpha)
                else "no significant difference between A and B")
        return (f"{head}: A - B = {self.diff:+.2f} pp, {self.confidence * 100:g}% CI [{lo:+.2f}, {hi:+.2f}], "
                f"p = {self.p_value:.3g} (t = {self.t_stat:.2f}, {self.df:.1f} df; "
                f"{self.replicates_a} vs {self.replicates_b} seeds, {self.episodes} shared episodes)")

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for k, v in out.items():
            if isinstance(v, tuple):
                out[k] = list(v)
        return out


def compare_groups(acc_a: Any, acc_b: Any, confidence: float = 0.95) -> GroupComparison:
    """Test mean(A) = mean(B) with seeds as the unit of replication (docs/statistics.md §3).

    `acc_a` [R_a, E], `acc_b` [R_b, E] (fractions; 1-D = one run), row-aligned on the SAME episodes.
    Var(diff) = sigma_sA^2/R_a + sigma_sB^2/R_b + var_e(colmean_A - colmean_B)/E (eq. (8)), each
    seed part estimated as in eq. (4); t = diff / SE against Student t with Satterthwaite df.
    With one replicate on either side the seed variance of that side is unknown: not testable.
    """
    a, b = as_group(acc_a, "group A"), as_group(acc_b, "group B")
    if a.shape[1] != b.shape[1]:
        raise FsarError(f"group A has {a.shape[1]} episodes, group B {b.shape[1]}",
                        "compare groups evaluated on the same episode set (same episode_digest)")
    av, bv = anova(a), anova(b)
    e = a.shape[1]
    delta = av.col_means - bv.col_means
    diff = float(delta.mean())
    var_ep = float(delta.var(ddof=1)) / e
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    ep_ci = (diff - z * math.sqrt(var_ep), diff + z * math.sqrt(var_ep))
    common = dict(replicates_a=av.replicates, replicates_b=bv.replicates, episodes=e, mean_a=av.grand_mean,
                  mean_b=bv.grand_mean, diff=diff, var_episode=var_ep, episode_only_ci=ep_ci, confidence=confidence)
    if av.replicates < 2 or bv.replicates < 2:
        which = " and ".join(n for n, v in (("A", av), ("B", bv)) if v.replicates < 2)
        return GroupComparison(**common, testable=False, reason=f"{which}: 1 seed, training variance unmeasured",
                               se=None, df=None, t_stat=None, p_value=None, ci=None, var_seed_a=None, var_seed_b=None)
    va, vb = _seed_component(av), _seed_component(bv)
    var = va + vb + var_ep
    denom = _seed_df_terms(av) + _seed_df_terms(bv) + var_ep ** 2 / (e - 1)
    df = var ** 2 / denom if denom > 0 else math.inf
    if var <= 0.0:  # every replicate and episode identical on both sides
        t, p, half = (0.0, 1.0, 0.0) if diff == 0.0 else (math.copysign(math.inf, diff), 0.0, 0.0)
    else:
        se = math.sqrt(var)
        t, p = diff / se, t_two_sided_p(diff / se, df)
        half = t_quantile(0.5 + confidence / 2.0, df) * se
    return GroupComparison(**common, testable=True, reason="", se=math.sqrt(var), df=df, t_stat=t, p_value=p,
                           ci=(diff - half, diff + half), var_seed_a=va, var_seed_b=vb)


def group_tiers(groups: Sequence[tuple[str, Any]], alpha: float = 0.05) -> list[int | None]:
    """Significance tiers (1 = best) of replicate groups on the same episodes, in the INPUT order.

    Same rule as `fsar_bench.results.stats.tiers` (sort by mean; a group opens a new tier only if
    `compare_groups` finds it significantly worse than the current tier's head), but seeds are the
    unit: groups with one replicate get None (never tiered by an episode-only test; flag them with
    `ONE_SEED`) and do not take part in the ranking.
    """
    mats = [as_group(acc, name) for name, acc in groups]
    if mats and any(m.shape[1] != mats[0].shape[1] for m in mats):
        bad = next(name for (name, _), m in zip(groups, mats) if m.shape[1] != mats[0].shape[1])
        raise FsarError(f"tiers need the same episodes for every group: {bad!r} differs from {groups[0][0]!r}",
                        "rank only groups evaluated on the same episode set (same episode_digest)")
    out: list[int | None] = [None] * len(mats)
    ranked = [i for i, m in enumerate(mats) if m.shape[0] >= 2]
    if not ranked:
        return out
    means = {i: float(mats[i].mean()) for i in ranked}
    order = sorted(ranked, key=lambda i: -means[i])  # stable: ties keep input order
    tier, head = 1, order[0]
    out[head] = tier
    for i in order[1:]:
        res = compare_groups(mats[head] / 100.0, mats[i] / 100.0)
        if means[i] < means[head] and res.significant(alpha):
            tier, head = tier + 1, i
        out[i] = tier
    return out
