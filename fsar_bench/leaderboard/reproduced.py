"""Reproduced rows: fsar-bench runs read from MLflow (or from a runs snapshot file), as replicate groups.

Rules (docs/leaderboard.md):

* Only FINISHED runs with the `fsar.run_key` tag count. Runs with the same run key are reruns of
  the same spec: the latest finished one (end time, then start time) is kept.
* A row is a replicate group (`replicates.make_groups`): the runs of one configuration that differ
  only in the training seed; its accuracy is the mean over seeds and episodes, its CI hierarchical.
* A group is *ranked* only if it is canonical (tag `fsar.canonical` = true), its episode digest is
  the digest locked today for its dataset and setting, it was trained and tested on the same
  dataset, it is above chance, its method uses the supports, it trained its own weights (a
  re-scored sweep point did not) and it is not a point of a sweep (`identity.sweep`). Everything
  else is *listed apart*, unranked, with the reason.
* Ranking happens within a weights class: pretrained groups in the main table; `random-init` groups
  (every toy-dataset run: the tiny backbones have no pretrained weights) in a separate table.
* Tiers come from the seed-aware test (`results.groups.group_tiers`); single-seed groups get none.

A snapshot file (`save_snapshot` / `load_snapshot`, JSON) holds the runs of a leaderboard with
their per-episode results, so that a leaderboard can be regenerated without the MLflow store:
the committed `leaderboards/<dataset>.md` files are rendered from `leaderboards/runs/<dataset>.json`.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fsar_bench.episodes import CANONICAL_EPISODES, CANONICAL_QUERY, canonical_test_key
from fsar_bench.errors import FsarError
from fsar_bench.io import atomic_write
from fsar_bench.leaderboard.replicates import RunGroup, make_groups
from fsar_bench.results.record import PRETRAINED, RANDOM_INIT, RunRecord, weights_class  # noqa: F401

SNAPSHOT_FORMAT = "fsar-leaderboard-runs/1"
TIER_ALPHA = 0.05
TIER_PERMUTATIONS = 10_000
TIER_SEED = 0

_TIER_CACHE: dict[tuple, list[int]] = {}



@dataclass
class RankedRow:
    group: RunGroup
    rank: int
    tier: int | None  # None: one seed, or per-episode results unavailable (not tiered)

    @property
    def run(self) -> RunRecord:
        return self.group.run


@dataclass
class UnrankedRow:
    group: RunGroup
    reason: str

    @property
    def run(self) -> RunRecord:
        return self.group.run


@dataclass
class Sections:
    """The reproduced rows of one dataset and setting."""

    dataset: str
    setting: str
    canonical_digest: str | None
    lock_key: str | None
    pretrained: list[RankedRow] = field(default_factory=list)
    random_init: list[RankedRow] = field(default_factory=list)
    unranked: list[UnrankedRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


# -- MLflow -------------------------------------------------------------------------------------

def store_exists(uri: str) -> bool:
    """False for a local store (sqlite file, file: folder) that does not exist: reading it would create it."""
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):]
        return path == ":memory:" or Path(path).exists()
    if uri.startswith("file:"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(uri).path)).exists()
    if "://" not in uri:  # a plain folder
        return Path(uri).exists()
    return True


def dedupe(records: list[RunRecord]) -> list[RunRecord]:
    """One record per run key: the latest finished rerun."""
    best: dict[str, RunRecord] = {}
    for rec in records:
        cur = best.get(rec.identity.run_key)
        if cur is None or _latest(rec) > _latest(cur):
            best[rec.identity.run_key] = rec
    return sorted(best.values(), key=_order)


def _latest(rec: RunRecord) -> tuple[int, int, str]:
    return rec.end_time, rec.start_time, rec.mlflow_run_id


def _order(rec: RunRecord) -> tuple[str, int, int, str]:
    i = rec.identity
    return i.dataset, i.way, i.shot, i.run_key


def query_mlflow(tracking_uri: str, experiment: str, datasets: list[str] | None = None,
                 settings: list[str] | None = None) -> list[RunRecord]:
    """The deduplicated FINISHED fsar-bench runs of `experiment` (optionally of some datasets/settings).

    A local store that does not exist gives no runs (and a warning) instead of being created.
    """
    if not store_exists(tracking_uri):
        warn(f"no MLflow store at {tracking_uri}: no reproduced rows (pass --tracking-uri or --config)")
        return []
    from fsar_bench.tracking import finished_runs

    runs = finished_runs(tracking_uri, experiment, datasets[0] if datasets and len(datasets) == 1 else None)
    if runs is None:
        warn(f"no MLflow experiment {experiment!r} in {tracking_uri}: no reproduced rows (pass --experiment)")
        return []
    records: list[RunRecord] = []
    for run in runs:
        rec = RunRecord.from_mlflow(run)
        if rec is None or (datasets and rec.identity.dataset not in datasets) or (
                settings and rec.identity.setting not in settings):
            continue
        records.append(rec)
    return dedupe(records)


def load_episodes(records: list[RunRecord], tracking_uri: str) -> None:
    """Fill `per_episode`/`episode_ids` from each run's episodes.parquet artifact (warn and skip on failure)."""
    from fsar_bench.results.runs import load_run

    for rec in records:
        if rec.results.per_episode is not None:
            continue
        try:
            _, df = load_run(rec.mlflow_run_id, tracking_uri)
        except FsarError as exc:
            i = rec.identity
            warn(f"run {rec.mlflow_run_id} ({i.method}, {i.dataset} {i.setting}): {exc}; "
                 "shown without a tier or a hierarchical CI")
            continue
        rec.results.per_episode = df["accuracy"].to_numpy(dtype=float)
        rec.results.episode_ids = df["episode"].to_numpy(dtype=np.int64)


# -- classification -----------------------------------------------------------------------------

def locked_set(dataset: str, way: int, shot: int) -> tuple[str | None, str | None]:
    """(lock key, locked digest) of the canonical test set of `dataset` at way/shot; (None, None) if none."""
    from fsar_bench.data.cards import get_card
    from fsar_bench.episodes.locks import read_lock

    try:
        card = get_card(dataset)
    except FsarError:
        return None, None
    key = canonical_test_key(way, shot)
    entry = read_lock(card).get(key)
    return (key, entry.get("digest")) if entry else (None, None)


def _stale_toy_data(rec: RunRecord) -> str | None:
    """A toy-dataset run made on videos of an older generator version (not comparable with current runs)."""
    if not rec.identity.data_version.startswith("toy-"):
        return None
    try:
        from fsar_bench.data.cards import get_card
        from fsar_bench.data.toy import stale_reason

        return stale_reason(get_card(rec.identity.dataset), rec.identity.data_version.rpartition("/v")[2])
    except (FsarError, KeyError):
        return None


def unranked_reason(rec: RunRecord, digest: str | None) -> str | None:
    """Why `rec` is not ranked; None when it is rankable."""
    i = rec.identity
    reasons = []
    if i.query != CANONICAL_QUERY:
        reasons.append(f"{i.query} queries per class (canonical: {CANONICAL_QUERY})")
    if i.episodes != CANONICAL_EPISODES:
        reasons.append(f"{i.episodes:,} episodes (canonical: {CANONICAL_EPISODES:,})")
    if digest is None:
        reasons.append("no locked episode set for this dataset and setting")
    elif i.episode_digest != digest:
        reasons.append("episode digest is not the locked one" + ("" if reasons else " (another seed, missing "
                                                                  "videos, or the lock changed since the run)"))
    stale = _stale_toy_data(rec)
    if stale:
        reasons.append(stale)
    if not i.canonical and not reasons:
        reasons.append("marked non-canonical by the run (e.g. --allow-missing)")
    if i.cross_dataset:
        reasons.append(f"cross-dataset: trained on {i.train_dataset}")
    if i.evaluated_only:  # weights from elsewhere (`fsar-bench eval`): not a reproduced training run
        reasons.append("evaluated, not trained here")
    if i.precision != "fp32":
        reasons.append(f"{i.precision} arithmetic (ranked rows are fp32)")
    if not math.isfinite(rec.results.accuracy):
        reasons.append("no accuracy metric")
    if not rescored_from(rec) and (point := sweep_point(rec)):  # (a re-scored point says where it came from)
        reasons.append(point)
    return "; ".join(reasons) or None


def supports_unused(rec: RunRecord) -> bool:
    """A zero-shot method (`Method.zero_shot`) with no fine-tuning (card `finetune: none`): it never
    looks at the supports, so a K-shot run of it is its zero-shot result under another name."""
    from fsar_bench.leaderboard.build import method_card
    from fsar_bench.registry import method_class

    if rec.identity.shot == 0:
        return False
    info = method_card(rec.identity.method)
    try:
        zero_shot = bool(getattr(method_class(rec.identity.method), "zero_shot", False))
    except Exception:  # noqa: BLE001  (an unknown or broken method is flagged by its card row)
        return False
    return zero_shot and info.card is not None and str(info.card.finetune).strip().lower() == "none"


def rescored_from(rec: RunRecord) -> str:
    """The run whose trained weights a re-scored run evaluated ('' when the run trained its own)."""
    src = rec.identity.init_from
    if not src:
        return ""
    parts = Path(src).parts
    return parts[-2] if len(parts) >= 2 else parts[-1]


def chance(rec: RunRecord) -> float:
    return 100.0 / rec.identity.way if rec.identity.way else math.nan


def misleading_reason(group: RunGroup) -> str | None:
    """Rows that would mislead in a ranking (issue #20): below chance, supports unused, re-scored."""
    rec, reasons = group.run, []
    acc, ch = group.accuracy, chance(group.run)
    if math.isfinite(acc) and acc < ch:
        reasons.append(f"below chance ({acc:.1f} % < {ch:.1f} % for {rec.identity.way}-way): "
                       "degenerate predictions, e.g. one class for every query")
    if supports_unused(rec):
        reasons.append(f"zero-shot method (supports unused): rank it at shot 0 ({rec.identity.way}w0s)")
    src = rescored_from(rec)
    if src:
        reasons.append(f"re-scored from {src} (weights trained at another setting: a sweep point)")
    return "; ".join(reasons) or None


def sweep_point(rec: RunRecord) -> str:
    """'point of sweep frames (frames = 4) <sweep>: ...' for a run made by `fsar-bench sweep` ('' otherwise):
    a sweep explores an axis; the ranked row of a configuration is its plain `fsar-bench run`."""
    sweep = getattr(rec.identity, "sweep", None) or {}
    if not sweep:
        return ""
    return (f"point of sweep {sweep.get('kind', '?')} ({sweep.get('axis', 'x')} = {sweep.get('value', '?')}) "
            f"{sweep.get('name', '')}: run it with fsar-bench run to rank it")


def leakage_flag(rec: RunRecord) -> str | None:
    """`LeakageReport.flag()` of the run: a recorded `flag`, else the audit of its datasets and (pretrained
    weights) its card's pretraining, as `engine.replicates.leakage_record` does when the run is made."""
    recorded = getattr(rec.identity, "leakage", None) or getattr(rec, "leakage", None)
    if isinstance(recorded, dict) and "flag" in recorded:
        return recorded["flag"] or None
    if rec.identity.data_version.startswith("toy-") or rec.identity.dataset.startswith("toy"):
        return None
    from fsar_bench.leaderboard.build import method_card
    from fsar_bench.leakage import audit

    info = method_card(rec.identity.method)  # pretraining counts for pretrained weights only (as the runner)
    pretraining = getattr(info.card, "pretraining", "") if rec.identity.weights == PRETRAINED else ""
    if not rec.identity.cross_dataset and not pretraining:
        return None
    try:
        return audit(rec.identity.train_dataset or rec.identity.dataset, rec.identity.dataset,
                     pretraining or None).flag()
    except Exception:  # noqa: BLE001  (no class table for this dataset: nothing to flag)
        return None


def rank(groups: list[RunGroup] | list[RunRecord], alpha: float = TIER_ALPHA) -> list[RankedRow]:
    """Rank groups (a bare run: a one-seed group) by mean accuracy (equal means share a rank); tiers
    from the seed-aware test.

    Tiers come from `groups.group_tiers` (seeds are the unit) among groups with per-episode results
    on the same episodes; single-seed groups get no tier (flagged `ONE_SEED`), whatever their
    episode-level differences.
    """
    from fsar_bench.leaderboard.replicates import single_group
    from fsar_bench.results.groups import group_tiers

    groups = [g if isinstance(g, RunGroup) else single_group(g) for g in groups]
    ordered = sorted(groups, key=lambda g: (-g.accuracy, g.run.identity.method, g.run.identity.matcher, g.key))
    ranks: list[int] = []
    for i, g in enumerate(ordered):
        ranks.append(ranks[-1] if i and g.accuracy == ordered[i - 1].accuracy else i + 1)
    tier_of: dict[str, int | None] = {}
    by_digest: dict[str, list[RunGroup]] = {}
    for g in ordered:
        if g.per_episode is not None:
            by_digest.setdefault(g.run.identity.episode_digest, []).append(g)
    for members in by_digest.values():  # tiered: the groups on the episode list of the best one
        ids = members[0].run.results.episode_ids
        members = [g for g in members if np.array_equal(g.run.results.episode_ids, ids)]
        key = (alpha, *((g.key, hashlib.sha256(np.ascontiguousarray(g.per_episode)).hexdigest()) for g in members))
        if key not in _TIER_CACHE:
            _TIER_CACHE[key] = group_tiers([(g.key, g.per_episode) for g in members], alpha=alpha)
        tier_of.update({g.key: t for g, t in zip(members, _TIER_CACHE[key])})
    return [RankedRow(g, k, tier_of.get(g.key)) for g, k in zip(ordered, ranks)]


def classify(records: list[RunRecord], dataset: str, setting: str) -> Sections:
    """Split the replicate groups of one dataset and setting into ranked (per weights class) and
    listed-apart rows."""
    from fsar_bench.leaderboard.reported import parse_setting

    way, shot = parse_setting(setting)
    lock_key, digest = locked_set(dataset, way, shot)
    sec = Sections(dataset, setting, digest, lock_key)
    pretrained, random_init = [], []
    mine = [r for r in records if r.identity.dataset == dataset and r.identity.setting == setting]
    for group in make_groups(mine):
        leak = leakage_flag(group.run)
        if leak:
            group.flags.append(leak)
        why = unranked_reason(group.run, digest) or misleading_reason(group)
        if why:
            sec.unranked.append(UnrankedRow(group, why))
        elif group.run.identity.weights == PRETRAINED:
            pretrained.append(group)
        else:
            random_init.append(group)
    sec.pretrained = rank(pretrained)
    sec.random_init = rank(random_init)
    sec.unranked.sort(key=_unranked_order)
    for name, rows in (("pretrained", sec.pretrained), ("random-init", sec.random_init)):
        if any(r.tier is None and r.group.seeds > 1 for r in rows):
            sec.notes.append(f"some {name} rows have no tier: their per-episode results could not be read")
    return sec


def _unranked_order(u: UnrankedRow) -> tuple[float, str, str]:
    acc = u.group.accuracy
    return -acc if math.isfinite(acc) else math.inf, u.run.identity.method, u.run.identity.run_key


# -- snapshot files -----------------------------------------------------------------------------

def _encode_episodes(rec: RunRecord) -> dict[str, Any] | None:
    if rec.results.per_episode is None or rec.results.episode_ids is None:
        return None
    acc, ids = rec.results.per_episode, rec.results.episode_ids
    out: dict[str, Any] = {"count": int(acc.size)}
    if np.array_equal(ids, np.arange(ids.size)):
        out["episode_ids"] = "0..count-1"
    else:
        out["episode_ids"] = [int(i) for i in ids]
    q = rec.identity.way * rec.identity.query
    correct = np.rint(acc * q)
    if q and np.all(np.abs(acc * q - correct) < 1e-9) and correct.max(initial=0) <= 9:
        out["queries_per_episode"] = q
        out["correct"] = "".join(str(int(c)) for c in correct)  # correct queries per episode, one digit each
    else:
        out["accuracy"] = [round(float(a), 12) for a in acc]
    return out


def _decode_episodes(data: dict[str, Any], where: str) -> tuple[np.ndarray, np.ndarray]:
    n = int(data["count"])
    ids = np.arange(n) if data.get("episode_ids") == "0..count-1" else np.asarray(data["episode_ids"], dtype=np.int64)
    if "correct" in data:
        q = int(data["queries_per_episode"])
        acc = np.frombuffer(data["correct"].encode("ascii"), dtype=np.uint8).astype(float) - ord("0")
        acc = acc / q
    else:
        acc = np.asarray(data["accuracy"], dtype=float)
    if acc.size != n or ids.size != n:
        raise FsarError(f"{where}: per-episode results of a run have {acc.size} values, expected {n}",
                        "re-export the snapshot with --save-runs")
    return acc, ids


def save_snapshot(records: list[RunRecord], path: Path) -> None:
    """Write the runs (and the per-episode results of the ranked ones) to a JSON snapshot, atomically."""
    runs = []
    for rec in sorted(records, key=_order):
        item = rec.to_snapshot_row()
        item["per_episode"] = _encode_episodes(rec)
        runs.append(item)
    text = json.dumps({"format": SNAPSHOT_FORMAT, "runs": runs}, indent=1, sort_keys=True) + "\n"
    atomic_write(path, text)


def load_snapshot(path: Path) -> list[RunRecord]:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise FsarError(f"cannot read the runs snapshot {path} ({exc.strerror or exc})",
                        "pass an existing file written by `fsar-bench leaderboard --save-runs`") from None
    except json.JSONDecodeError as exc:
        raise FsarError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})",
                        "re-export it with `fsar-bench leaderboard --save-runs`") from None
    if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
        raise FsarError(f"{path} is not a leaderboard runs snapshot (format {SNAPSHOT_FORMAT})",
                        "re-export it with `fsar-bench leaderboard --save-runs`")
    out = []
    for item in data.get("runs", []):
        episodes = item.get("per_episode")
        try:
            rec = RunRecord.from_snapshot_row(item)
        except (KeyError, TypeError, ValueError) as exc:
            raise FsarError(f"{path}: a run entry is incomplete ({exc})", "re-export it with --save-runs") from None
        if episodes:
            rec.results.per_episode, rec.results.episode_ids = _decode_episodes(episodes, str(path))
        out.append(rec)
    return out

