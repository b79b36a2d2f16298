"""Leaderboard rows are replicate groups: the runs of one configuration that differ only in the
training seed (issue #17). A group's accuracy is the mean over its seeds and episodes, its CI the
hierarchical one (seeds + episodes, docs/statistics.md eq. (6)); a single-seed group keeps its
episode-only CI and the `ONE_SEED` flag, and is never tiered (groups.group_tiers).

The group key is the run record's `identity.group_key` when recorded, else (older runs) the digest
of the identity without the run key and the training seed. A replicate is a (seed, hardware class)
pair; two runs of one group with the same pair are the same run twice (e.g. logged again under
another run key): the latest is kept.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, fields

import numpy as np

from fsar_bench.results.groups import ONE_SEED, GroupSummary, summarize_group
from fsar_bench.results.record import Identity, RunRecord

# identity fields that do not define the configuration (the seed varies within a group)
_NOT_CONFIG = {"run_key", "train_seed", "canonical_reason", "hparams", "train_config", "recipe", "group_key", "code",
               "leakage"}


def group_key(rec: RunRecord) -> str:
    """The replicate-group key of a run (`identity.group` when recorded)."""
    explicit = getattr(rec.identity, "group_key", "")
    if explicit:
        return str(explicit)
    config = {f.name: getattr(rec.identity, f.name) for f in fields(Identity) if f.name not in _NOT_CONFIG}
    if not config.get("sweep"):  # older runs (no sweep field) keep their digest
        config.pop("sweep", None)
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _seed(rec: RunRecord) -> str:
    return f"{rec.identity.train_seed}|{getattr(rec.environment, 'hardware_class', '')}"


@dataclass
class RunGroup:
    """The replicates of one configuration, one run per seed (sorted by seed)."""

    key: str
    runs: list[RunRecord]
    summary: GroupSummary | None = None  # None: some replicate has no per-episode results
    flags: list[str] = field(default_factory=list)

    @property
    def run(self) -> RunRecord:
        """The representative run (first seed): identity, efficiency, hardware."""
        return self.runs[0]

    @property
    def seeds(self) -> int:
        return len(self.runs)

    @property
    def accuracy(self) -> float:
        if self.summary is not None:
            return self.summary.mean
        accs = [r.results.accuracy for r in self.runs]
        return float(np.mean(accs)) if all(math.isfinite(a) for a in accs) else math.nan

    @property
    def ci95(self) -> float:
        """Half-width: hierarchical with >= 2 seeds, episode-only with one (NaN when unknown)."""
        s = self.summary
        if s is None:
            return self.run.results.ci95 if self.seeds == 1 else math.nan
        lo, hi = s.hierarchical_ci if s.hierarchical_ci is not None else s.episode_ci
        return (hi - lo) / 2.0

    @property
    def seed_sd(self) -> float | None:
        if self.seeds < 2:
            return None
        if self.summary is not None:
            return self.summary.seed_sd
        return float(np.std([r.results.accuracy for r in self.runs], ddof=1))

    @property
    def per_episode(self) -> np.ndarray | None:
        """[R, E] fractions when every replicate has aligned per-episode results."""
        rows = [r.results.per_episode for r in self.runs]
        ids = [r.results.episode_ids for r in self.runs]
        if any(a is None for a in rows) or any(i is None or not np.array_equal(i, ids[0]) for i in ids):
            return None
        return np.vstack(rows)

    @property
    def hardware(self) -> str:
        return hardware_class(self.run)


def hardware_class(rec: RunRecord) -> str:
    """`cpu`, `gpu:<name>`, ...: the record's `hardware_class`, else the device part of its hardware key."""
    explicit = getattr(rec.environment, "hardware_class", "")
    if explicit:
        return str(explicit)
    key = rec.environment.hardware_key
    if key:
        return key.split(" | ")[0]
    device = rec.environment.versions.get("device_name", "")
    return device or ""


def _latest(rec: RunRecord) -> tuple[int, int, str]:
    return rec.end_time, rec.start_time, rec.identity.run_key


def single_group(rec: RunRecord) -> RunGroup:
    """`rec` as a one-seed group of its own."""
    group = RunGroup(rec.identity.run_key, [rec], flags=[ONE_SEED])
    if rec.results.per_episode is not None:
        group.summary = summarize_group(rec.results.per_episode)
    return group


def make_groups(records: list[RunRecord]) -> list[RunGroup]:
    """Replicate groups of `records` (one dataset and setting), in first-seen order."""
    by_key: dict[str, dict[str, RunRecord]] = {}
    for rec in records:
        seeds = by_key.setdefault(group_key(rec), {})
        cur = seeds.get(_seed(rec))
        if cur is None or _latest(rec) > _latest(cur):
            seeds[_seed(rec)] = rec
    out = []
    for key, seeds in by_key.items():
        group = RunGroup(key, [seeds[s] for s in sorted(seeds)])
        acc = group.per_episode
        if acc is not None:
            group.summary = summarize_group(acc)
        if group.seeds < 2:
            group.flags.append(ONE_SEED)
        out.append(group)
    return out
