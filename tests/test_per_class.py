"""Per-class accuracy from per-episode results: pooled over episodes, weakest first, and the
per-class difference `compare` shows."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from fsar_bench.results.per_class import difference, extremes, per_class_accuracy, read_csv, summary_line, write_csv


def _episodes():
    return [SimpleNamespace(index=0, classes=("run", "jump", "swim")),
            SimpleNamespace(index=1, classes=("swim", "run", "walk"))]


def _results(preds0, preds1):
    return pd.DataFrame({"episode": [0, 1], "labels": [[0, 1, 2], [0, 1, 2]], "preds": [preds0, preds1]})


def test_pooled_over_episodes_weakest_first(tmp_path):
    # ep 0: run right, jump wrong, swim right; ep 1: swim wrong, run right, walk right
    table = per_class_accuracy(_results([0, 0, 2], [1, 1, 2]), _episodes())
    got = dict(zip(table["class"], table["accuracy"]))
    assert got == {"jump": 0.0, "swim": 50.0, "run": 100.0, "walk": 100.0}
    assert list(table["class"][:2]) == ["jump", "swim"] and table["queries"].sum() == 6
    ex = extremes(table, k=1)
    assert ex == {"weakest": {"jump": 0.0}, "strongest": {"walk": 100.0}}
    assert summary_line(ex) == "weakest: jump 0.0 | strongest: walk 100.0"
    assert read_csv(write_csv(table, tmp_path / "per_class.csv")).equals(table)


def test_difference_is_a_minus_b_largest_first():
    a = per_class_accuracy(_results([0, 0, 2], [1, 1, 2]), _episodes())
    b = per_class_accuracy(_results([0, 1, 2], [0, 1, 0]), _episodes())  # jump and swim fixed, walk broken
    d = difference(a, b, k=4)
    assert list(d["class"][:2]) == ["jump", "walk"]
    row = d.set_index("class").loc["jump"]
    assert row["diff"] == pytest.approx(-100.0) and d.set_index("class").loc["walk", "diff"] == pytest.approx(100.0)


def test_run_records_per_class(workdir, cli):
    res = cli("run", "protonet", "--dataset", "toy-motion", "--episodes", "20", "--steps", "2")
    assert res.code == 0, res.err
    (folder,) = (workdir / "fsar-runs").glob("protonet-toy-motion-5w1s-*")
    table = read_csv(folder / "per_class.csv")
    assert table["queries"].sum() == 20 * 5  # one query per class per episode
    import json

    summary = json.loads((folder / "summary.json").read_text())
    assert set(summary["per_class"]["weakest"]) <= set(table["class"])
    assert min(summary["per_class"]["weakest"].values()) == pytest.approx(table["accuracy"].min(), abs=0.01)
    assert "weakest:" in res.out
