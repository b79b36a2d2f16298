"""Frozen episode sets: the standard specs of every dataset and their locked digests.

`datasets/<name>/episodes.lock.yaml` records the digest of each standard set. A run whose
episodes match a locked spec is canonical only if its recomputed digest equals the lock;
any other spec runs, marked non-canonical.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from fsar_bench.data.cards import DatasetCard
from fsar_bench.episodes import CANONICAL_EPISODES, CANONICAL_QUERY, VAL_EPISODES
from fsar_bench.episodes.sampler import EpisodeSet, EpisodeSpec
from fsar_bench.errors import FsarError
from fsar_bench.io import atomic_write

LOCK_FILE = "episodes.lock.yaml"
TEST_EPISODES = CANONICAL_EPISODES  # module names, so tests can shrink the standard sets


def standard_specs(card: DatasetCard) -> list[EpisodeSpec]:
    """10,000 test episodes for 5-way 0/1/3/5-shot (0 = zero-shot: classes and queries only) and
    N-way 1-shot (N = 6..10, where the split has N classes), one query per class; 1,000 val
    episodes for 5-way 1/3/5-shot (model selection)."""
    specs = []
    n_test = len(card.split("test").by_class)
    for shot in (0, 1, 3, 5):
        specs.append(EpisodeSpec(card.name, "test", 5, shot, CANONICAL_QUERY, TEST_EPISODES, card.seeds["test"]))
    for way in range(6, 11):
        if way <= n_test:
            specs.append(EpisodeSpec(card.name, "test", way, 1, CANONICAL_QUERY, TEST_EPISODES, card.seeds["test"]))
    if "val" in card.split_files and len(card.split("val").by_class) >= 5:
        for shot in (1, 3, 5):
            specs.append(EpisodeSpec(card.name, "val", 5, shot, 1, VAL_EPISODES, card.seeds["val"]))
    return specs


def make_set(card: DatasetCard, spec: EpisodeSpec) -> EpisodeSet:
    return EpisodeSet(spec, card.split(spec.split).by_class)


def read_lock(card: DatasetCard) -> dict[str, dict]:
    path = card.folder / LOCK_FILE
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    return data.get("sets", {})


def write_lock(card: DatasetCard) -> Path:
    """Recompute every standard set and write the lock (a maintainer's command)."""
    sets = {}
    for spec in standard_specs(card):
        es = make_set(card, spec)
        sets[spec.key] = {"split": spec.split, "way": spec.way, "shot": spec.shot, "query": spec.query,
                          "episodes": spec.episodes, "seed": spec.seed,
                          "split_sha256": card.split(spec.split).sha256, "digest": es.digest}
    path = card.folder / LOCK_FILE
    header = ("# Frozen canonical episode sets of this dataset (docs/episodes.md).\n"
              "# Written by `fsar-bench episodes lock`; checked by `fsar-bench episodes verify`.\n")
    atomic_write(path, header + yaml.safe_dump({"dataset": card.name, "sets": sets}, sort_keys=False))
    return path


@dataclass
class Canonicity:
    canonical: bool
    reason: str


def canonicity(card: DatasetCard, es: EpisodeSet) -> Canonicity:
    """Whether `es` is a locked standard set with the locked digest."""
    lock = read_lock(card).get(es.spec.key)
    if lock is None:
        return Canonicity(False, f"{es.spec.key} is not a standard episode set of {card.name}")
    if lock["seed"] != es.spec.seed:
        return Canonicity(False, f"seed {es.spec.seed!r} differs from the frozen seed {lock['seed']!r}")
    if lock["digest"] != es.digest:
        raise FsarError(f"episode digest mismatch for {card.name} {es.spec.key}: computed {es.digest[:12]}, "
                        f"locked {lock['digest'][:12]}",
                        "the split list or the sampler changed; run `fsar-bench episodes verify` to see which")
    return Canonicity(True, "locked standard set")
