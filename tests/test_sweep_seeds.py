"""Sweeps with seeds (issue #17 item 1) and sweep points on the leaderboard (issue #20).

`sweep nway --seeds 2` on toy data: every point is a replicate group nested under the sweep's MLflow
parent run, each seed trains once and its weights are re-scored at the other point, the json table
holds the group mean and hierarchical CI, and a re-run reuses everything. A sweep point is listed
apart on the leaderboard with the sweep it belongs to, never ranked."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import mlflow
import numpy as np

from fsar_bench.config import load_config
from fsar_bench.results.record import Identity, Results, RunRecord

SMALL = ("--episodes", "10", "--steps", "2")


def _search(client, exp_id: str, flt: str) -> list:
    return client.search_runs([exp_id], flt)


def test_nway_sweep_with_seeds_groups_reuse_and_mlflow(workdir, cli, tracking_uri):
    (workdir / "bench.yaml").write_text("sweeps:\n  nway: {ways: [3, 5], shot: 1}\ntrain: {val_episodes: 10}\n")
    res = cli("sweep", "nway", "--method", "protonet", "--dataset", "toy-motion", *SMALL, "--seeds", "2")
    assert res.code == 0, res.err
    table = json.loads((workdir / "fsar-runs" / "sweeps" / "nway-protonet-toy-motion.json").read_text())
    assert [r["point"] for r in table] == ["3", "5"]
    for row in table:  # every point: 2 replicates, group mean and hierarchical CI
        stats = row["statistics"]
        assert row["seeds"] == ["0", "0.1"] and len(row["run_dirs"]) == 2 and stats["replicates"] == 2
        assert row["ci_kind"] == "hierarchical" and row["accuracy"] == stats["mean"]
        low, high = stats["hierarchical_ci"]
        assert abs(row["ci95"] - (high - low) / 2) < 1e-9
    summaries = {d: json.loads((Path(d) / "summary.json").read_text()) for r in table for d in r["run_dirs"]}
    trained = {s["train_seed"]: d for d, s in summaries.items() if s["trained"]}
    assert sorted(trained) == ["0", "0.1"] and all(d in table[0]["run_dirs"] for d in trained.values())
    for d in table[1]["run_dirs"]:  # seed s re-scores the weights seed s trained at the first point
        s = summaries[d]
        assert not s["trained"] and s["init_from"] == str(Path(trained[s["train_seed"]]) / "final.pt")
        assert s["sweep"] == {"kind": "nway", "name": "sweep-nway-protonet-toy-motion", "axis": "way", "value": "5"}

    client = mlflow.MlflowClient(tracking_uri)
    exp_id = client.get_experiment_by_name(load_config()["experiment"]).experiment_id
    (parent_id,) = {client.get_run(r["group_run"]).data.tags["mlflow.parentRunId"] for r in table}
    parent = client.get_run(parent_id)
    assert parent.data.tags["fsar.sweep"] == "nway" and parent.info.run_name == "sweep-nway-protonet-toy-motion"
    groups = _search(client, exp_id, f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(g.data.tags.get("fsar.kind") for g in groups) == ["group", "group"]
    assert {g.info.run_id for g in groups} == {r["group_run"] for r in table}
    for g, row in ((g, next(r for r in table if r["group_run"] == g.info.run_id)) for g in groups):
        reps = _search(client, exp_id, f"tags.`mlflow.parentRunId` = '{g.info.run_id}'")
        assert sorted(r.info.run_id for r in reps) == sorted(row["runs"])
        assert {r.data.params["sweep.value"] for r in reps} == {row["point"]}
    from fsar_bench.tracking import child_runs

    assert sorted(child_runs(tracking_uri, parent.info.run_id)) == sorted(i for r in table for i in r["runs"])

    n_runs = len(client.search_runs([exp_id]))
    again = cli("sweep", "nway", "--method", "protonet", "--dataset", "toy-motion", *SMALL, "--seeds", "2")
    assert again.code == 0, again.err
    assert again.out.count("reused run from ") == 4 and "training" not in again.out.lower().replace(
        "trained", "")  # no replicate trains again
    assert len(client.search_runs([exp_id])) == n_runs  # no new sweep, group or replicate run
    assert json.loads((workdir / "fsar-runs" / "sweeps" / "nway-protonet-toy-motion.json").read_text()) == table

    # an interrupted sweep: one replicate of the last point died before writing its summary
    victim = Path(table[1]["run_dirs"][1])
    (victim / "summary.json").unlink()
    client.set_terminated(summaries[str(victim)]["mlflow_run_id"], status="KILLED")
    resumed = cli("sweep", "nway", "--method", "protonet", "--dataset", "toy-motion", *SMALL, "--seeds", "2")
    assert resumed.code == 0, resumed.err
    assert resumed.out.count("reused run from ") == 3  # only the dead replicate ran again (re-scored)
    row = json.loads((workdir / "fsar-runs" / "sweeps" / "nway-protonet-toy-motion.json").read_text())[1]
    assert row["run_dirs"] == table[1]["run_dirs"] and row["accuracy"] == table[1]["accuracy"]
    reps = _search(client, exp_id, f"tags.`mlflow.parentRunId` = '{row['group_run']}' and "
                   "attributes.status = 'FINISHED'")
    assert len(reps) == 2 and row["group_run"] == table[1]["group_run"]


def test_seeds_on_the_cluster_launcher_is_a_one_line_error(workdir, cli):
    res = cli("sweep", "nway", "--method", "protonet", "--dataset", "toy-motion", "--seeds", "2",
              "--launcher", "submitit")
    assert res.code == 2 and "not supported yet" in res.err and "--seed S" in res.err
    assert len(res.err.strip().splitlines()) == 1
    assert not (workdir / "fsar-runs").exists() or not any((workdir / "fsar-runs").glob("protonet-*"))


# -- the leaderboard ------------------------------------------------------------------------------------

def _rec(key: str, seed: int, **ident) -> RunRecord:
    from fsar_bench.data.cards import get_card
    from fsar_bench.episodes.locks import read_lock

    n = 10_000
    acc = np.random.default_rng(seed).binomial(5, 0.8, n) / 5.0
    digest = read_lock(get_card("toy-motion"))["test-5w1s-1q-10000"]["digest"]
    fields = dict(run_key=key, method="protonet", matcher="proto", dataset="toy-motion", train_dataset="toy-motion",
                  way=5, shot=1, episodes=n, episode_digest=digest, canonical=True, train_seed=str(seed),
                  train_steps=150, trained=True, preset="tiny", backbone="test_resnet", frames=4)
    fields.update(ident)
    return RunRecord(Identity(**fields), results=Results(accuracy=acc.mean() * 100, ci95=0.3, per_episode=acc,
                                                         episode_ids=np.arange(n)), mlflow_run_id=key)


def test_trained_frames_sweep_point_is_listed_apart_not_ranked(tmp_path):
    from fsar_bench.leaderboard import load_snapshot, make, save_snapshot
    from fsar_bench.leaderboard.reproduced import classify

    plain = _rec("plain", 1)
    point = _rec("point", 2, sweep={"kind": "frames", "name": "sweep-frames-protonet-toy-motion", "axis": "frames",
                                    "value": "4"})
    save_snapshot([plain, point], tmp_path / "s.json")  # committed boards render from snapshots
    records = load_snapshot(tmp_path / "s.json")
    sec = classify(records, "toy-motion", "5w1s")
    assert [r.run.identity.run_key for r in sec.random_init] == ["plain"]
    (apart,) = sec.unranked
    reason = ("point of sweep frames (frames = 4) sweep-frames-protonet-toy-motion: run it with fsar-bench run "
              "to rank it")
    assert apart.reason == reason
    assert reason in make(records, ["toy-motion"], ["5w1s"], fmt="md")


def test_sweep_membership_keys_the_run_and_old_records_load():
    from dataclasses import asdict

    from fsar_bench.identity import run_keys

    ident = asdict(_rec("k", 0).identity)
    plain = run_keys(ident, "cpu")
    assert run_keys({k: v for k, v in ident.items() if k != "sweep"}, "cpu") == plain  # old keys unchanged
    point = {**ident, "sweep": {"kind": "frames", "name": "s", "axis": "frames", "value": "4"}}
    assert run_keys(point, "cpu") != plain  # a sweep point is not the plain run of its configuration
    summary = _rec("k", 0).to_summary()
    summary.pop("sweep")  # a record written before the field existed
    assert RunRecord.from_summary(summary).identity.sweep == {}


def test_sweep_engine_functions_stay_short():
    import fsar_bench.engine.sweep as mod

    tree = ast.parse(Path(mod.__file__).read_text())
    long = [n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.end_lineno - n.lineno >= 60]
    assert long == []
