"""Replicate groups (issue #17): `run --seeds N` / `--seed S` repeated, MLflow parent and children,
resuming and reusing replicates, and `compare` of two disjoint seed sets of one command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fsar_bench.engine.replicates import replicate_seeds
from fsar_bench.results.groups import ONE_SEED

TINY = ("protonet", "--dataset", "toy-appearance", "--steps", "3", "--episodes", "100")


def test_seeds_are_derived_from_the_base_seed():
    assert replicate_seeds("0", 3) == ["0", "0.1", "0.2"]
    assert replicate_seeds("7", 2) == replicate_seeds("7", 5)[:2]  # --seeds 5 extends --seeds 2


def test_bad_seed_options(cli, workdir):
    res = cli("run", *TINY, "--seeds", "2", "--seed", "1", "--seed", "2")
    assert res.code == 2 and "give one or the other" in res.err and len(res.err.strip().splitlines()) == 1
    res = cli("run", *TINY, "--seeds", "0")
    assert res.code == 2 and "at least 1 replicate" in res.err
    res = cli("run", *TINY, "--seed", "1", "--seed", "1")
    assert res.code == 2 and "'1' is given twice" in res.err
    assert not (workdir / "fsar-runs").exists() or not any((workdir / "fsar-runs").glob("protonet-*"))


@pytest.fixture(scope="module")
def group_dirs(tmp_path_factory, toy_data_root, tracking_uri):
    """Two disjoint seed sets of one command: `--seeds 2` (0, 0.1) and `--seed a --seed b`."""
    from fsar_bench.cli import main

    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("seeds")
        mp.chdir(path)
        mp.setenv("FSAR_BENCH_DATA", str(toy_data_root))
        mp.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        mp.delenv("FSAR_BENCH_CONFIG", raising=False)
        docs = []
        for extra in (["--seeds", "2"], ["--seed", "a", "--seed", "b"]):
            out = path / f"doc-{len(docs)}.json"
            import contextlib
            import io

            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                try:
                    main(["run", *TINY, *extra, "--json"])
                except SystemExit as exc:
                    assert not exc.code
            out.write_text(buf.getvalue())
            docs.append(json.loads(buf.getvalue()))
        yield path, docs


def test_group_reports_and_mlflow_parent(group_dirs, tracking_uri):
    import mlflow

    _, docs = group_dirs
    doc = docs[0]
    assert doc["seeds"] == ["0", "0.1"] and len(doc["replicates"]) == 2
    stats = doc["statistics"]
    assert stats["replicates"] == 2 and stats["seed_sd"] is not None and stats["hierarchical_ci"]
    assert 0.0 <= stats["seed_share"] <= 1.0
    assert len({r["run_key"] for r in doc["replicates"]}) == 2
    assert json.loads((Path(doc["group_dir"]) / "group.json").read_text())["group_key"] == doc["group_key"]
    assert docs[1]["group_key"] == doc["group_key"]  # the same command: one group key
    client = mlflow.MlflowClient(tracking_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              f"tags.`fsar.group` = '{doc['group_key']}'")
    assert len(runs) == 1 and runs[0].info.run_id == doc["mlflow_run_id"]
    children = client.search_runs([runs[0].info.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{doc['mlflow_run_id']}'")
    assert len(children) == 4  # both seed sets of the command are children of its one parent
    assert runs[0].data.metrics["replicates"] == 2 and "seed_sd" in runs[0].data.metrics
    lo, hi = docs[1]["statistics"]["hierarchical_ci"]  # the latest seed set's; the table's columns are filled
    assert runs[0].data.metrics["ci95"] == round((hi - lo) / 2, 4)
    child = children[0].data.params
    assert all(runs[0].data.params[k] == child[k] for k in ("matcher", "way", "shot", "preset", "frames", "dataset"))
    assert "run_key" not in runs[0].data.params and "train_seed" not in runs[0].data.params


def test_rerun_reuses_replicates_and_prints_the_group(group_dirs, cli, tracking_uri, monkeypatch):
    import mlflow

    path, docs = group_dirs
    monkeypatch.chdir(path)
    client = mlflow.MlflowClient(tracking_uri)
    n = len(client.search_runs([e.experiment_id for e in client.search_experiments()]))
    res = cli("run", *TINY, "--seeds", "2")
    assert res.code == 0, res.err
    assert res.out.count("reused run from ") == 2
    for text in ("between-seed SD", "hierarchical 95% CI", "training seeds cause"):
        assert text in res.out
    assert len(client.search_runs([e.experiment_id for e in client.search_experiments()])) == n
    exp = client.get_experiment_by_name("fsar-bench")
    assert f"/#/experiments/{exp.experiment_id}/runs?workflowType=machine_learning" in res.out
    one = cli("run", *TINY, "--seeds", "1")  # seed 0 again: reused, and one seed says so
    assert one.code == 0 and "reused run from " in one.out and ONE_SEED in one.out


def test_compare_disjoint_seed_sets_of_one_command(group_dirs, cli):
    _, docs = group_dirs
    res = cli("compare", docs[0]["group_dir"], docs[1]["group_dir"], "--n-boot", "200", "--n-perm", "200",
              "--json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert doc["group"]["testable"] and not doc["significant"]
    assert doc["verdict"].startswith("no significant difference")
    assert doc["a"]["label"] != doc["b"]["label"] and "0.1" in doc["a"]["label"] and "b" in doc["b"]["seeds"]
    single = cli("compare", docs[0]["replicates"][0]["run_dir"], docs[0]["replicates"][1]["run_dir"],
                 "--n-boot", "100", "--n-perm", "100")
    assert single.code == 0 and "significantly" not in single.out.split("verdict:")[1]


def test_reproduce_a_snapshot_row(group_dirs, cli, monkeypatch):
    """`reproduce RUN_KEY` re-runs a leaderboard row (a 2-seed group) with a new seed and places the
    new accuracy against the row's between-seed prediction interval."""
    from fsar_bench.leaderboard.reproduced import save_snapshot
    from fsar_bench.results.record import RunRecord

    path, docs = group_dirs
    monkeypatch.chdir(path)
    records = []
    for rep in docs[0]["replicates"]:
        rec = RunRecord.from_summary(json.loads((Path(rep["run_dir"]) / "summary.json").read_text()))
        records.append(rec)
    snapshot = path / "snapshot.json"
    save_snapshot(records, snapshot)
    key = docs[0]["replicates"][1]["run_key"]
    res = cli("reproduce", key, "--runs", snapshot, "--json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert doc["seed"] == "0.2" and sorted(doc["row_seeds"]) == ["0", "0.1"]
    assert doc["interval_kind"].startswith("between-seed 95% prediction interval of 2 seeds")
    low, high = doc["interval"]
    assert doc["inside"] == (low <= doc["accuracy"] <= high)
    assert doc["run_key"] not in {r["run_key"] for r in docs[0]["replicates"]}
    missing = cli("reproduce", "f" * 12, "--runs", snapshot)
    assert missing.code == 2 and "no leaderboard row has run key" in missing.err
