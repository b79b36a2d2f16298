"""`reproduce` re-runs a row's exact command (issue #17 item 7): a run made with `--set` method and
matcher overrides and non-default flags records its arguments (`spec`), and the new replicate has the
same arguments, the same group key and another seed. A row written before `spec` existed is rebuilt
from its identity, says so in one line, and a differing group key is reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fsar_bench.cli.reproduce_cmd import LEGACY
from fsar_bench.results.record import RunRecord

CMD = ("run", "protonet", "--dataset", "toy-appearance", "--matcher", "otam", "--set", "matcher.lam=0.05",
       "--set", "image_size=24", "--frames", "4", "--steps", "2", "--episodes", "10", "--no-cache", "--seed", "3")


def _record(run_dir: str) -> RunRecord:
    return RunRecord.from_summary(json.loads((Path(run_dir) / "summary.json").read_text()))


@pytest.fixture()
def row(cli, workdir, one_thread):
    """The snapshot of one run of CMD (the leaderboard row), its record and the snapshot path."""
    from fsar_bench.leaderboard.reproduced import save_snapshot

    res = cli(*CMD, "--json")
    assert res.code == 0, res.err
    rec = _record(json.loads(res.out)["run_dir"])
    snapshot = workdir / "snapshot.json"
    save_snapshot([rec], snapshot)
    return rec, snapshot


def test_reproduce_reapplies_the_rows_overrides(row, cli, tracking_uri):
    import mlflow

    rec, snapshot = row
    spec = rec.identity.spec
    assert spec["overrides"] == {"matcher.lam": 0.05, "image_size": 24} == rec.identity.overrides
    assert (spec["matcher"], spec["frames"], spec["cache"], spec["train"]) == ("otam", 4, False,
                                                                               {"steps": 2, "seed": "3"})
    assert "root" not in spec and json.loads(snapshot.read_text())["runs"][0]["spec"] == spec
    res = cli("reproduce", rec.identity.run_key, "--runs", snapshot, "--json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    new = _record(doc["run_dir"])
    assert new.identity.train_seed == doc["seed"] != "3"
    assert new.identity.overrides == rec.identity.overrides and new.identity.hparams == rec.identity.hparams
    assert new.identity.spec == {**spec, "train": {"steps": 2, "seed": doc["seed"]}}
    assert new.identity.group_key == rec.identity.group_key and doc["same_group"] and doc["spec_recorded"]
    assert new.identity.run_key != rec.identity.run_key
    run = mlflow.MlflowClient(tracking_uri).get_run(new.mlflow_run_id)  # MLflow holds the same arguments
    assert RunRecord.from_mlflow(run).identity.spec == new.identity.spec


def test_a_row_without_recorded_arguments_says_so(row, cli):
    """A row from before `spec` existed: rebuilt from its identity (the --set values are lost), one
    line says so, and the new replicate's differing group key is reported."""
    rec, snapshot = row
    data = json.loads(snapshot.read_text())
    del data["runs"][0]["spec"]
    snapshot.write_text(json.dumps(data))
    res = cli("reproduce", rec.identity.run_key, "--runs", snapshot)
    assert res.code == 0, res.err
    assert res.out.count(LEGACY) == 1
    assert f"differs from the row's {rec.identity.group_key}" in res.out


def test_arguments_round_trip_and_unknown_fields_are_refused():
    from dataclasses import replace

    from fsar_bench.engine.runner import RunSpec
    from fsar_bench.errors import FsarError

    spec = RunSpec(method="protonet", dataset="toy-motion", matcher="otam", overrides={"matcher.lam": 0.05},
                   train={"steps": 5, "lr": 1e-3}, recipe="release", precision="bf16", num_workers=2,
                   root="/data/here", train_root="/data/train")
    args = json.loads(json.dumps(spec.arguments()))  # as summary.json, MLflow and snapshots hold it
    assert "root" not in args and "train_root" not in args  # this machine's paths: bench.yaml decides
    assert RunSpec.from_arguments(args) == replace(spec, root=None, train_root=None)
    assert RunSpec.from_arguments(args).overrides == {"matcher.lam": 0.05}
    with pytest.raises(FsarError, match="unknown to this fsar-bench"):
        RunSpec.from_arguments({**args, "warp_drive": True})
