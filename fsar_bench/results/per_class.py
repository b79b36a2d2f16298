"""Per-class accuracy: which actions a method gets right and which it fails.

Papers discuss which classes a method fixes (e.g. temporally ordered actions in SSv2); the mean
episode accuracy hides that. Every query of every test episode is one trial of its true class:
per-class accuracy is the fraction of that class's queries predicted correctly, pooled over all
episodes (a class appears in many episodes with different distractors, so this is its accuracy
against the dataset's other test classes, not against one fixed set).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fsar_bench.io import atomic_path

COLUMNS = ["class", "queries", "correct", "accuracy"]
TOP_K = 3  # classes named in the record and the run summary, each side


def per_class_accuracy(results: pd.DataFrame, episodes: Sequence[Any]) -> pd.DataFrame:
    """One row per test class (`class`, `queries`, `correct`, `accuracy` in %), weakest first.

    `results` is the per-episode frame (columns `episode`, `labels`, `preds`); `episodes` the
    episode set the run scored (`episodes[i].classes[label]` is a label's class name)."""
    by_index = {ep.index: ep for ep in episodes}
    queries: dict[str, int] = {}
    correct: dict[str, int] = {}
    for ep_id, labels, preds in zip(results["episode"], results["labels"], results["preds"]):
        classes = by_index[int(ep_id)].classes
        for label, pred in zip(labels, preds):
            name = classes[int(label)]
            queries[name] = queries.get(name, 0) + 1
            correct[name] = correct.get(name, 0) + int(int(label) == int(pred))
    rows = [(c, queries[c], correct[c], 100.0 * correct[c] / queries[c]) for c in queries]
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.sort_values(["accuracy", "class"], kind="stable").reset_index(drop=True)


def extremes(table: pd.DataFrame, k: int = TOP_K) -> dict[str, dict[str, float]]:
    """The record's `per_class` field: the k weakest and k strongest classes with their accuracy (%)."""
    rows = list(zip(table["class"], table["accuracy"].round(2)))
    k = min(k, len(rows) // 2) if len(rows) > 1 else len(rows)
    return {"weakest": {c: float(a) for c, a in rows[:k]},
            "strongest": {c: float(a) for c, a in reversed(rows[len(rows) - k:])}}


def write_csv(table: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path, suffix=".csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    return path


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False)


def difference(a: pd.DataFrame, b: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """Per-class accuracy of A minus B (as `compare` reports A - B) over the classes both runs scored,
    largest changes first: which actions one method fixes and the other fails. Columns: class, a, b,
    diff (percentage points)."""
    m = a[["class", "accuracy"]].merge(b[["class", "accuracy"]], on="class", suffixes=("_a", "_b"))
    m = m.rename(columns={"accuracy_a": "a", "accuracy_b": "b"})
    m["diff"] = m["a"] - m["b"]
    m = m.reindex(m["diff"].abs().sort_values(ascending=False, kind="stable").index)
    return m.head(k).reset_index(drop=True)


def summary_line(per_class: dict[str, dict[str, float]]) -> str:
    """'weakest: a 12.0, b 20.0 | strongest: c 98.0, ...' for the run summary; '' without data."""
    if not per_class or not per_class.get("weakest"):
        return ""
    def fmt(d: dict[str, float], best_first: bool) -> str:  # (summary.json sorts keys: order by value)
        items = sorted(d.items(), key=lambda cv: (-cv[1] if best_first else cv[1], cv[0]))
        return ", ".join(f"{c} {v:.1f}" for c, v in items)
    return f"weakest: {fmt(per_class['weakest'], False)} | strongest: {fmt(per_class.get('strongest', {}), True)}"


def of_run(summary: dict[str, Any], results: pd.DataFrame) -> pd.DataFrame | None:
    """The per-class table of a run from its summary and per-episode results: its episode set is
    rebuilt from the summary (dataset split list, setting, seed) and used only when its digest equals
    the run's; None when it cannot be (unknown dataset, a set filtered by --allow-missing)."""
    from fsar_bench.data.cards import get_card
    from fsar_bench.episodes.locks import make_set
    from fsar_bench.episodes.sampler import EpisodeSpec
    from fsar_bench.errors import FsarError

    try:
        card = get_card(str(summary["dataset"]))
        spec = EpisodeSpec(card.name, "test", int(summary["way"]), int(summary["shot"]), int(summary["query"]),
                           int(summary["episodes"]), str(summary["episode_seed"]))
        es = make_set(card, spec)
    except (FsarError, KeyError, ValueError, OSError):
        return None
    if es.digest != summary.get("episode_digest"):
        return None
    return per_class_accuracy(results, es.episodes)


def compare_rows(sa: dict[str, Any], dfa: pd.DataFrame, sb: dict[str, Any], dfb: pd.DataFrame,
                 k: int = 5) -> list[tuple[str, str]]:
    """`compare`'s per-class rows: the k classes whose accuracy differs most between A and B, as
    (label, 'A xx.x %, B yy.y % (A - B +d pp)'); [] when a run's classes cannot be recovered."""
    a, b = of_run(sa, dfa), of_run(sb, dfb)
    if a is None or b is None:
        return []
    return [(f"class {r['class']}", f"A {r['a']:.1f} %, B {r['b']:.1f} % (A - B {r['diff']:+.1f} pp)")
            for _, r in difference(a, b, k).iterrows()]
