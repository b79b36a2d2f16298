"""Publication figures: PDF + PNG, chance line, seed replicates as one point with the hierarchical CI."""

from __future__ import annotations

import numpy as np
import pytest

from fsar_bench.errors import FsarError
from fsar_bench.results import plots
from fsar_bench.results.groups import stack_replicates, summarize_group


def _summary(method, way, acc, ci, digest="d", **kw):
    return {"method": method, "way": way, "shot": 1, "query": 1, "dataset": "toy-motion", "accuracy": acc,
            "ci95": ci, "episode_digest": digest, "frames": 8, **kw}


def test_seed_replicates_become_one_point_with_the_hierarchical_ci():
    rng = np.random.default_rng(0)
    accs = [rng.integers(0, 2, 40).astype(float) for _ in range(3)]
    runs = [(_summary("a", 5, 100 * a.mean(), 1.0), a) for a in accs]
    (series,) = plots.from_runs(runs, "way")
    (pt,) = series.points
    g = summarize_group(stack_replicates([(str(i), a) for i, a in enumerate(accs)]))
    assert pt.replicates == 3 and pt.mean == pytest.approx(g.mean)
    assert pt.err == pytest.approx((g.hierarchical_ci[1] - g.hierarchical_ci[0]) / 2)


def test_one_line_per_method_and_matcher():
    runs = [(_summary("a", w, 50.0, 2.0), None) for w in (5, 6)]
    runs += [(_summary("a", w, 40.0, 2.0, matcher="otam"), None) for w in (5, 6)]
    series = plots.from_runs(runs, "way")
    assert sorted(s.label for s in series) == ["a", "a (otam)"]
    assert all([p.x for p in s.points] == [5, 6] for s in series)
    assert plots.title([r[0] for r in runs], "way") == "toy-motion: N-way 1-shot, 1 query per class"


def test_figure_writes_pdf_and_png(tmp_path):
    s = plots.Series("a", [plots.Point(5, 50.0, 2.0), plots.Point(10, 30.0, 2.5)])
    paths = plots.figure([s], "way", "t", tmp_path / "fig", None)
    assert [p.suffix for p in paths] == [".pdf", ".png"]
    assert paths[0].read_bytes()[:4] == b"%PDF" and paths[1].read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".*tmp*"))


def test_unknown_axis_and_mixed_episode_sets_are_refused():
    with pytest.raises(FsarError, match="unknown plot axis"):
        plots.from_runs([(_summary("a", 5, 1.0, 1.0), None)], "colour")
    a = np.ones(10)
    with pytest.raises(FsarError, match="different episode sets"):
        plots.from_runs([(_summary("a", 5, 1.0, 1.0, digest="x"), a), (_summary("a", 5, 1.0, 1.0, digest="y"), a)],
                        "way")
