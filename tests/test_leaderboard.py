"""`fsar-bench leaderboard`: ranking rules, dedupe, reported rows, formats, committed toy leaderboards.

Fake runs are logged through fsar_bench.tracking.Tracker (as the runner does) into their own
experiment of the session's MLflow store, with summary.json and episodes.parquet artifacts.
"""

from __future__ import annotations

import csv
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fsar_bench.data.cards import get_card
from fsar_bench.episodes.locks import read_lock

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "leaderboard-test"
N = 10_000
DIGEST = read_lock(get_card("toy-motion"))["test-5w1s-1q-10000"]["digest"]


def _episodes(seed: int, p: float) -> np.ndarray:
    return np.random.default_rng(seed).binomial(5, p, N) / 5.0


def _near(base: np.ndarray, seed: int) -> np.ndarray:
    """`base` with a few episodes moved up and slightly more moved down: not separable from base."""
    out = base.copy()
    rng = np.random.default_rng(seed)
    up = rng.choice(np.flatnonzero(out < 1.0), 10, replace=False)
    down = rng.choice(np.setdiff1d(np.flatnonzero(out > 0.0), up), 12, replace=False)
    out[up] += 0.2
    out[down] -= 0.2
    return out


def _log(tracker_cls, uri: str, tmp: Path, name: str, acc: np.ndarray, *, key: str, method: str = "protonet",
         matcher: str = "proto", dataset: str = "toy-motion", weights_tag: str = "pretrained",
         weights_source: str = "hub:test", canonical: bool = True, digest: str = DIGEST, episodes: int | None = None,
         train_dataset: str | None = None, status: str = "FINISHED", experiment: str = EXPERIMENT,
         seed: str = "0") -> str:
    n = acc.size if episodes is None else episodes
    acc = acc[:n]
    pct = acc * 100
    ci = 1.96 * pct.std(ddof=1) / np.sqrt(n)
    tracker = tracker_cls(uri, experiment, tmp / "artifacts")
    params = {"method": method, "matcher": matcher, "preset": "tiny", "backbone": "test_resnet", "dataset": dataset,
              "train_dataset": train_dataset or dataset, "way": 5, "shot": 1, "query": 1, "frames": 8,
              "episodes": n, "episode_digest": digest, "canonical": canonical, "weights_source": weights_source,
              "run_key": key, "train_seed": seed}
    tags = {"fsar.run_key": key, "fsar.canonical": str(canonical).lower(), "fsar.weights": weights_tag,
            "fsar.setting": "5w1s", "fsar.dataset": dataset, "fsar.method": method}
    run_id = tracker.start(name, params, tags)
    tracker.log_metrics({"accuracy": pct.mean(), "ci95": ci, "accuracy_std": pct.std(ddof=1), "episodes": n,
                         "params_total": 1_234_567, "params_trainable": 234_567})
    folder = tmp / run_id
    folder.mkdir()
    pd.DataFrame({"episode": np.arange(n), "accuracy": acc}).to_parquet(folder / "episodes.parquet", index=False)
    (folder / "summary.json").write_text(json.dumps({"accuracy": pct.mean(), "episode_digest": digest,
                                                     "episodes": n, "method": method}))
    tracker.log_artifact(folder / "episodes.parquet")
    tracker.log_artifact(folder / "summary.json")
    tracker.end(status)
    return run_id


@pytest.fixture(scope="module")
def store(tracking_uri, tmp_path_factory):
    """Fake runs covering every rule; returns (uri, {label: run_id}, {label: per-episode accuracies})."""
    from fsar_bench.tracking import Tracker

    tmp = tmp_path_factory.mktemp("lb-runs")
    a = _episodes(1, 0.8)
    arrays = {"A": a, "B": _near(a, 2), "C": _episodes(3, 0.6), "D": _episodes(4, 0.9), "E": _episodes(5, 0.5),
              "F": _episodes(6, 0.95), "G": _episodes(7, 0.85), "H": _episodes(8, 0.97), "X": _episodes(9, 0.99),
              "old": _episodes(10, 0.3)}
    log = lambda *args, **kw: _log(Tracker, tracking_uri, tmp, *args, **kw)  # noqa: E731
    ids = {}
    ids["old"] = log("a-old", arrays["old"], key="key-a")  # an older rerun of A: superseded
    ids["A"] = log("a", arrays["A"], key="key-a")
    ids["A-failed"] = log("a-failed", arrays["X"], key="key-a", status="FAILED")  # newer but not FINISHED
    ids["B"] = log("b", arrays["B"], key="key-b", matcher="otam")
    ids["C"] = log("c", arrays["C"], key="key-c", method="mystery_net", matcher="trx")  # unregistered method
    ids["D"] = log("d", arrays["D"], key="key-d", matcher="otam", weights_tag="random-init",
                   weights_source="random-init")
    ids["E"] = log("e", arrays["E"], key="key-e", matcher="trx", weights_tag="random-init",
                   weights_source="random-init")
    ids["H"] = log("h", arrays["H"], key="key-h", weights_tag="pretrained", weights_source="random-init")
    ids["F"] = log("f", arrays["F"], key="key-f", canonical=False, digest="f" * 64, episodes=1000)
    ids["G"] = log("g", arrays["G"], key="key-g", digest="0" * 64)  # says canonical, digest is not the lock's
    ids["cross"] = log("cross", arrays["X"], key="key-x", train_dataset="toy-appearance")
    ids["other-exp"] = log("other", arrays["X"], key="key-o", experiment=EXPERIMENT + "-other")
    ids["appearance"] = log("app", arrays["E"], key="key-app", dataset="toy-appearance",
                            digest=read_lock(get_card("toy-appearance"))["test-5w1s-1q-10000"]["digest"])
    # Two more training seeds of every ranked configuration: rows are replicate groups (#17).
    extra = {"A": {}, "B": {"matcher": "otam"}, "C": {"method": "mystery_net", "matcher": "trx"},
             "D": {"matcher": "otam", "weights_tag": "random-init", "weights_source": "random-init"},
             "E": {"matcher": "trx", "weights_tag": "random-init", "weights_source": "random-init"},
             "H": {"weights_tag": "pretrained", "weights_source": "random-init"}}
    for label, kw in extra.items():
        for n in (1, 2):
            ids[f"{label}{n}"] = log(f"{label.lower()}-s{n}", _near(arrays[label], 100 + n),
                                     key=f"key-{label.lower()}-s{n}", seed=str(n), **kw)
    return tracking_uri, ids, arrays


@pytest.fixture(scope="module")
def records(store):
    from fsar_bench.leaderboard import runs_from_mlflow

    uri, _, _ = store
    return runs_from_mlflow(uri, EXPERIMENT, datasets=["toy-motion"])


@pytest.fixture(scope="module")
def sections(records):
    from fsar_bench.leaderboard.reproduced import classify

    return classify(records, "toy-motion", "5w1s")


@pytest.fixture()
def lb(cli):
    """`fsar-bench leaderboard ...` as installed (app.py must mount the command itself)."""
    return lambda *args: cli("leaderboard", *args)


def _keys(rows) -> list[str]:
    return [r.run.identity.run_key for r in rows]


# -- rules --------------------------------------------------------------------------------------

def test_dedupe_keeps_latest_finished_rerun(records, store):
    _, ids, arrays = store
    a = [r for r in records if r.identity.run_key == "key-a"]
    assert len(a) == 1 and a[0].mlflow_run_id == ids["A"]
    assert a[0].results.accuracy == pytest.approx(arrays["A"].mean() * 100)
    assert {r.mlflow_run_id for r in records}.isdisjoint({ids["old"], ids["A-failed"], ids["other-exp"], ids["appearance"]})


def test_only_canonical_pretrained_runs_in_main_ranking(sections):
    assert _keys(sections.pretrained) == ["key-a", "key-b", "key-c"]
    assert all(r.run.identity.weights == "pretrained" and r.run.identity.canonical
               and r.run.identity.episode_digest == DIGEST
               for r in sections.pretrained)
    assert [r.rank for r in sections.pretrained] == [1, 2, 3]
    # A and B differ on 22 episodes in both directions: one tier; C is clearly worse.
    assert [r.tier for r in sections.pretrained] == [1, 1, 2]
    assert sections.canonical_digest == DIGEST


def test_random_init_runs_ranked_apart(sections):
    # H is tagged pretrained but its weights source is random-init: the conservative reading wins.
    assert _keys(sections.random_init) == ["key-h", "key-d", "key-e"]
    assert [r.rank for r in sections.random_init] == [1, 2, 3]
    assert all(r.tier is not None for r in sections.random_init)
    ranked_pretrained = set(_keys(sections.pretrained))
    assert ranked_pretrained.isdisjoint({"key-d", "key-e", "key-h"})


def test_non_canonical_listed_apart_with_reasons(sections):
    reasons = {u.run.identity.run_key: u.reason for u in sections.unranked}
    assert set(reasons) == {"key-f", "key-g", "key-x"}
    assert "1,000 episodes" in reasons["key-f"]
    assert "digest is not the locked one" in reasons["key-g"]
    assert "cross-dataset" in reasons["key-x"]
    ranked = set(_keys(sections.pretrained)) | set(_keys(sections.random_init))
    assert ranked.isdisjoint(reasons)


def _rec(key, acc, ids=None, seed="0", matcher="proto", **ident):
    from fsar_bench.results.record import Identity, Results, RunRecord

    fields = dict(run_key=key, method="protonet", matcher=matcher, dataset="toy-motion", way=5, shot=1,
                  episodes=acc.size, episode_digest=DIGEST, canonical=True, train_seed=seed, train_steps=150)
    fields.update(ident)
    return RunRecord(Identity(**fields), results=Results(
        accuracy=acc.mean() * 100, ci95=1.0, per_episode=acc,
        episode_ids=np.arange(acc.size) if ids is None else ids), mlflow_run_id=key)


def test_tiers_only_among_same_episodes():
    from fsar_bench.leaderboard.replicates import make_groups
    from fsar_bench.leaderboard.reproduced import rank

    a = _episodes(11, 0.7)[:500]
    rev = np.arange(500)[::-1].copy()
    runs = [_rec("a", a, matcher="a"), _rec("a1", _near(a, 1), matcher="a", seed="1"),
            _rec("b", a[::-1].copy(), rev, matcher="b"), _rec("b1", _near(a, 2)[::-1].copy(), rev, matcher="b",
                                                              seed="1"),
            _rec("c", _near(a, 3), matcher="c"), _rec("c1", _near(a, 4), matcher="c", seed="1")]
    rows = rank(make_groups(runs))
    assert {r.run.identity.run_key: r.tier for r in rows} == {"a": 1, "c": 1, "b": None}
    no_episodes = _rec("d", a)
    no_episodes.results.per_episode = None
    assert [r.tier for r in rank(make_groups([no_episodes]))] == [None]


def test_single_seed_groups_flagged_and_never_tiered():
    """#17 item 3: an episode-only test would separate these two runs; with one seed each, neither is tiered."""
    from fsar_bench.leaderboard.replicates import make_groups
    from fsar_bench.leaderboard.reproduced import rank
    from fsar_bench.results.groups import ONE_SEED

    good, bad = _episodes(21, 0.9), _episodes(22, 0.5)
    rows = rank(make_groups([_rec("good", good, matcher="x"), _rec("bad", bad, matcher="y")]))
    assert [r.rank for r in rows] == [1, 2] and [r.tier for r in rows] == [None, None]
    assert all(ONE_SEED in r.group.flags and r.group.seed_sd is None for r in rows)
    assert rows[0].group.ci95 == pytest.approx(1.96 * (good * 100).std(ddof=0) / np.sqrt(N), rel=1e-3)


def test_group_row_statistics_match_summarize_group():
    from fsar_bench.leaderboard.replicates import make_groups
    from fsar_bench.results.groups import summarize_group

    base = _episodes(31, 0.7)
    reps = [base, _episodes(32, 0.75), _episodes(33, 0.65)]
    (group,) = make_groups([_rec(f"k{n}", acc, seed=str(n)) for n, acc in enumerate(reps)])
    ref = summarize_group(np.vstack(reps))
    lo, hi = ref.hierarchical_ci
    assert group.seeds == 3 and group.accuracy == pytest.approx(ref.mean)
    assert group.ci95 == pytest.approx((hi - lo) / 2) and group.seed_sd == pytest.approx(ref.seed_sd)
    assert group.flags == []


def test_runs_on_older_toy_data_are_not_ranked():
    """summary.data_version: a toy run on videos of an older generator is listed apart."""
    from fsar_bench.data.cards import get_card
    from fsar_bench.data.toy import data_version
    from fsar_bench.leaderboard.reproduced import locked_set, unranked_reason
    from fsar_bench.results.record import Identity, Results, RunRecord

    current = data_version(get_card("toy-motion"))
    digest = locked_set("toy-motion", 5, 1)[1]

    def rec(version):
        ident = Identity(run_key="k", method="m", dataset="toy-motion", way=5, shot=1, episodes=10_000,
                         episode_digest=digest, canonical=True, data_version=version, train_dataset="toy-motion")
        return RunRecord(ident, results=Results(accuracy=50.0, ci95=1.0), mlflow_run_id="k")

    assert unranked_reason(rec(f"toy-motion/v{current}"), digest) is None
    assert unranked_reason(rec(""), digest) is None  # runs from before data_version was recorded
    old = unranked_reason(rec("toy-motion/v1"), digest)
    assert old == f"toy data generator version 1 (current: {current})"


# -- reported rows ------------------------------------------------------------------------------

def test_reported_copy_is_byte_identical():
    shared = ROOT.parent / "shared" / "reported"
    if not shared.exists():
        pytest.skip("../shared/reported is not next to this checkout")
    for name in ("accuracy.csv", "efficiency.csv", "README.md"):
        assert (ROOT / "leaderboards" / "reported" / name).read_bytes() == (shared / name).read_bytes()


def test_ucf101_reported_rows_from_all_three_papers(lb, store):
    uri, _, _ = store
    res = lb("--dataset", "ucf101", "--tracking-uri", uri, "--experiment", EXPERIMENT, "--format", "html")
    assert res.code == 0, res.err
    out = res.out
    for source in ("DMGAL Table III", "DMGAL Table IV", "MA-FSAR Table 1", "I2ST Table 1"):
        assert source in out
    for setting in ("5-way 1-shot (5w1s)", "5-way 3-shot (5w3s)", "5-way 5-shot (5w5s)"):
        assert f"<h2>ucf101 · {setting}</h2>" in out
    assert "<td>I2ST</td>" in out and "<td>i2st</td>" in out  # hosted as: the i2st card lists "I2ST"
    assert "No canonical run with pretrained weights." in out
    assert "<h2>Sources of the reported rows</h2>" in out and "arXiv:2411.11335" in out
    assert "<td>i2st</td>" in out.split("<h2>Method cards</h2>")[1]  # the card of the hosted method


def _md_rows(text: str, heading: str) -> list[list[str]]:
    """The cells of the first Markdown table after `heading`."""
    part = text.split(heading, 1)[1].split("\n#", 1)[0]
    start = part.index("\n|") + 1
    lines = part[start:].split("\n\n", 1)[0].splitlines()
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]


def test_ucf101_markdown_fits_a_page(lb, tmp_path):
    """#20: the methods x settings table first, one row per reported method/backbone with all its sources,
    right-aligned numbers, no details, no long lines."""
    res = lb("--dataset", "ucf101", "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}")
    assert res.code == 0, res.err
    out = res.out
    assert len(out.encode()) < 16_000 and max(map(len, out.splitlines())) <= 160
    first_table = out.index("\n|")
    assert out.index("## Methods × settings") < first_table < out.index("## How to read")
    assert len(out[:first_table]) < 800  # no long paragraph before the first table
    rows = _md_rows(out, "## Methods × settings")
    header, align, body = rows[0], rows[1], rows[2:]
    assert header[:5] == ["method", "backbone", "5w1s", "5w3s", "5w5s"] and "row" not in header
    assert all(align[header.index(c)].endswith(":") for c in ("5w1s", "5w3s", "5w5s"))  # right-aligned
    otam = [r for r in body if r[0] == "OTAM" and r[1] == "ResNet-50"]
    assert len(otam) == 1 and otam[0][2] == "79.9"  # once, not three times
    assert otam[0][5].count(",") >= 1  # ... with every table that prints it
    keys = [(r[0], r[1]) for r in body]
    assert len(keys) == len(set(keys))
    for detail in ("| digest", "GFLOPs |", "| run key", "| reported |"):
        assert detail not in out


def test_markdown_escapes_angle_brackets():
    """#20: `datasets.<name>.masks` in a card note must not render as `datasets..masks`."""
    from fsar_bench.leaderboard.render import _md_cell, _md_text

    assert _md_text("read from datasets.<name>.masks") == "read from datasets.&lt;name&gt;.masks"
    assert _md_text("see `datasets/<name>/card.yaml`") == "see `datasets/<name>/card.yaml`"  # code spans kept
    assert _md_cell("a <b> | c") == "a &lt;b&gt; \\| c"


def test_reported_rows_filtering():
    from fsar_bench.leaderboard.reported import reported_rows, resolve_dataset

    assert resolve_dataset("kinetics") == "kinetics100" and resolve_dataset("TOY_motion") == "toy-motion"
    rows = reported_rows("ucf101", ["5w1s"])
    assert set(rows["source_paper"]) == {"dmgal", "ma_fsar", "i2st"}
    assert set(rows["setting"]) == {"5w1s"}
    assert rows["accuracy"].is_monotonic_decreasing
    assert not rows["source_table"].str.contains("Table V|Table 5|Table 4,", regex=True).any()  # ablations out
    i2st = rows[(rows["method"] == "I2ST") & (rows["source_paper"] == "i2st")]
    assert list(i2st["accuracy"]) == [87.7]
    doubtful = rows[(rows["method"] == "HCL") & (rows["source_paper"] == "i2st")]
    assert doubtful["flags"].str.contains("DOUBTFUL").all()
    every = reported_rows("ucf101", ["5w1s"], all_tables=True)
    assert len(every) > len(rows) and every["source_table"].str.contains("I2ST Table 5").any()
    merged = reported_rows("kinetics100", ["5w1s"])
    assert merged["source_table"].str.contains("I2ST Table 2, I2ST Table 6").any()
    assert reported_rows("toy-motion").empty


# -- CLI and formats ----------------------------------------------------------------------------

def test_toy_motion_markdown(lb, store):
    uri, _, _ = store
    res = lb("--dataset", "toy-motion", "--setting", "5w1s", "--tracking-uri", uri, "--experiment", EXPERIMENT)
    assert res.code == 0, res.err
    out = res.out
    main = _md_rows(out, "### Ranked: pretrained weights")
    randoms = _md_rows(out, "### Ranked separately: trained from random initialisation")
    apart = _md_rows(out, "### Listed apart (not ranked)")
    head = main[0]
    assert head[:2] == ["rank", "tier"] and {"seeds", "seed SD", "hardware", "flags"} <= set(head)
    col = {c: head.index(c) for c in head}
    assert [(r[col["method"]], r[col["matcher"]]) for r in main[2:]] == [
        ("protonet", "proto"), ("protonet", "otam"), ("mystery_net", "trx")]
    assert [r[col["seeds"]] for r in main[2:]] == ["3"] * 3
    assert [r[col["tier"]] for r in main[2:]] == ["1", "1", "2"]
    assert all(" ± " in r[col["accuracy (%) ± 95% CI"]] and r[col["seed SD"]] != "–" for r in main[2:])
    assert len(randoms) == 2 + 3 and len(apart) == 2 + 3
    assert all(r[apart[0].index("seeds")] == "1" and "1 seed" in r[apart[0].index("flags")] for r in apart[2:])
    assert "| run key" not in out and "`key-a`" not in out and DIGEST[:12] in out  # details in csv/html; the canonical set is named
    cards = out.split("## Method cards")[1]
    assert "| mystery_net " in cards and "card unavailable: unknown method" in cards  # unknown method: no crash
    assert "| protonet " in cards
    assert "Reported in the papers" not in out  # the papers report nothing on toy datasets
    summary = _md_rows(out, "## Methods × settings")
    assert summary[0][:3] == ["method", "backbone", "5w1s"] and len(summary) == 2 + 6


def test_csv_and_html(lb, store, tmp_path):
    uri, _, _ = store
    out_csv = tmp_path / "lb.csv"
    res = lb("--dataset", "toy-motion", "--dataset", "ucf101", "--setting", "5w1s", "--format", "csv",
             "--output", out_csv, "--tracking-uri", uri, "--experiment", EXPERIMENT)
    assert res.code == 0, res.err
    assert [p.name for p in tmp_path.iterdir()] == ["lb.csv"]  # atomic write: no temporary left over
    df = pd.read_csv(out_csv, keep_default_na=False)
    kinds = df.groupby("kind")["run_key"].apply(set).to_dict()  # one line per run of a group
    seeds = lambda ks: {f"{k}{s}" for k in ks for s in ("", "-s1", "-s2")}  # noqa: E731
    assert kinds["ranked-pretrained"] == seeds({"key-a", "key-b", "key-c"})
    assert kinds["ranked-random-init"] == seeds({"key-d", "key-e", "key-h"})
    assert kinds["unranked"] == {"key-f", "key-g", "key-x"}
    assert set(df[df["kind"] == "ranked-pretrained"]["seeds"].astype(int)) == {3}
    rep = df[df["kind"] == "reported"]
    assert set(rep["dataset"]) == {"ucf101"} and set(rep["source_paper"]) == {"dmgal", "ma_fsar", "i2st"}
    assert (rep["source_table"] != "").all()
    ranked = df[df["kind"] == "ranked-pretrained"].sort_values("rank", key=lambda s: s.astype(int))
    assert list(ranked["tier"].astype(int)) == [1, 1, 1, 1, 1, 1, 2, 2, 2]

    res = lb("--dataset", "toy-motion", "--format", "html", "--tracking-uri", uri, "--experiment", EXPERIMENT)
    assert res.code == 0, res.err

    class Checker(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack, self.tables = [], 0

        def handle_starttag(self, tag, attrs):
            if tag not in ("meta", "br"):
                self.stack.append(tag)
            self.tables += tag == "table"

        def handle_endtag(self, tag):
            assert self.stack.pop() == tag

    checker = Checker()
    checker.feed(res.out)
    assert checker.stack == [] and checker.tables >= 4
    assert "<code>key-a</code>" in res.out
    assert "<h3>Ranked separately: trained from random initialisation</h3>" in res.out


def test_bad_input_is_one_line_error(lb, tmp_path):
    for args, words in ((("--dataset", "ucf-101x"), "unknown dataset"), (("--setting", "5-1"), "<way>w<shot>s"),
                        (("--format", "pdf"), "unknown format")):
        res = lb(*args, "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}")
        assert res.code == 2 and words in res.err and len(res.err.strip().splitlines()) == 1, (args, res.err)
    assert not (tmp_path / "none.db").exists()


def test_missing_store_is_not_created(lb, tmp_path):
    db = tmp_path / "absent" / "mlflow.db"
    res = lb("--dataset", "hmdb51", "--setting", "5w1s", "--tracking-uri", f"sqlite:///{db}", "--no-reported")
    assert res.code == 0 and "no MLflow store" in res.err
    assert not db.exists() and not db.parent.exists()


# -- snapshots and the committed leaderboards ---------------------------------------------------

def test_snapshot_round_trip(lb, store, records, tmp_path):
    from fsar_bench.leaderboard import load_snapshot, make, save_snapshot

    path = tmp_path / "runs" / "toy-motion.json"
    save_snapshot(records, path)
    again = load_snapshot(path)
    assert [r.identity.run_key for r in again] == [r.identity.run_key for r in records]
    by_key = {r.identity.run_key: r for r in again}
    for r in records:
        if r.results.per_episode is not None:
            np.testing.assert_allclose(by_key[r.identity.run_key].results.per_episode, r.results.per_episode,
                                       rtol=0, atol=1e-12)
    assert make(again, ["toy-motion"]) == make(records, ["toy-motion"])
    assert "end_time" not in path.read_text()  # no timestamps in a snapshot

    uri, _, _ = store
    saved = tmp_path / "saved.json"
    res = lb("--dataset", "toy-motion", "--tracking-uri", uri, "--experiment", EXPERIMENT, "--save-runs", saved)
    assert res.code == 0, res.err
    res2 = lb("--dataset", "toy-motion", "--runs", saved)
    assert res2.code == 0 and res2.out == res.out  # deterministic: same text from MLflow and from the snapshot


def test_update_and_check(lb, records, tmp_path):
    from fsar_bench.leaderboard import save_snapshot

    folder = tmp_path / "boards"
    save_snapshot(records, folder / "runs" / "toy-motion.json")
    res = lb("--check", folder)
    assert res.code == 1 and "stale" in res.err
    res = lb("--update", folder)
    assert res.code == 0 and "toy-motion.md" in res.out
    text = (folder / "toy-motion.md").read_text()
    assert text.startswith("# Leaderboard: toy-motion") and "do not edit by hand" in text
    assert lb("--check", folder).code == 0
    (folder / "toy-motion.md").write_text(text.replace("mystery_net", "mystery_nez"))
    assert lb("--check", folder).code == 1


def test_committed_leaderboards_are_current():
    """CI: `leaderboards/<dataset>.md` must equal what `leaderboards/runs/<dataset>.json` renders to
    (regenerate with `fsar-bench leaderboard --update leaderboards`)."""
    from fsar_bench.leaderboard import committed_targets, stale_committed

    folder = ROOT / "leaderboards"
    targets = {t[0] for t in committed_targets(folder)}
    assert {"toy-motion", "toy-appearance"} <= targets
    assert stale_committed(folder) == [], "run `fsar-bench leaderboard --update leaderboards` and commit the result"
    for name in ("toy-motion", "toy-appearance"):
        text = (folder / f"{name}.md").read_text()
        assert "Ranked separately: trained from random initialisation" in text
        snap = json.loads((folder / "runs" / f"{name}.json").read_text())
        assert snap["runs"], name


def test_csv_columns_are_stable(records):
    from fsar_bench.leaderboard import make
    from fsar_bench.leaderboard.render import CSV_COLUMNS

    text = make(records, ["toy-motion"], ["5w1s"], fmt="csv", reported=False)
    header = next(csv.reader(io.StringIO(text)))
    assert header == CSV_COLUMNS
