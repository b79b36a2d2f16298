"""torchrun: 2 gloo ranks on CPU train a method and evaluate it exactly like one process (docs/distributed.md)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch

from fsar_bench.config import load_config
from fsar_bench.engine import distributed
from fsar_bench.engine.runner import RunSpec, execute
from fsar_bench.engine.train import _crossed


def test_single_process_helpers_are_no_ops(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.init("cpu")
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.shard([3, 1, 2]) == [3, 1, 2]
    assert distributed.all_gather_object("x") == ["x"] and distributed.broadcast_object("y") == "y"
    assert distributed.local_device("cuda") == "cuda"


def test_shard_is_strided_disjoint_and_covering(monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    parts = []
    for r in range(3):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        parts.append(distributed.shard(list(range(10))))
    assert parts == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]


def test_update_boundaries_match_single_process():
    # one process: an update after episode i when (i + 1) % E == 0; W ranks: every E * W episodes
    assert [i for i in range(8) if _crossed(i, i + 1, 2)] == [1, 3, 5, 7]
    assert [b for b in range(0, 12, 2) if _crossed(b, b + 2, 4)] == [2, 6, 10]


def test_nproc_relaunches_the_same_command_through_torchrun(workdir, cli, monkeypatch):
    seen = {}

    def fake_run(cmd, check=False):
        seen["cmd"] = cmd
        return subprocess.CompletedProcess(cmd, 3)

    monkeypatch.setattr(subprocess, "run", fake_run)
    res = cli("run", "protonet", "--dataset", "toy-motion", "--nproc", "2", "--no-train", "--set", "backbone=my net",
              "--episodes", "7")
    assert res.code == 3  # torchrun's exit code
    cmd = seen["cmd"]
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"]
    assert cmd[6:] == ["fsar_bench", "run", "protonet", "--dataset", "toy-motion", "--episodes", "7",
                       "--set", "backbone=my net", "--no-train"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli("run", "protonet", "--nproc", "2").code == 2  # already under torchrun


def test_two_gloo_ranks_train_and_evaluate_like_one_process(workdir, cli, tracking_uri):
    # sharded validation too; episodes_per_update is the total over the 2 ranks (one episode each per update)
    (workdir / "bench.yaml").write_text("train:\n  val_every: 2\n  val_episodes: 10\n  episodes_per_update: 2\n")
    common = ["--dataset", "toy-appearance", "--episodes", "30", "--episode-batch", "10"]
    res = cli("run", "protonet", *common, "--steps", "4", "--results-dir", "dist", "--nproc", "2")
    assert res.code == 0, res.err
    (run_dir,) = [p for p in (workdir / "dist").glob("protonet-*") if p.is_dir()]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["train_steps"] == 4 and summary["episodes"] == 30
    assert summary["val_best_step"] in (2, 4)
    assert (run_dir / "final.pt").exists() and not (run_dir / "checkpoint.pt").exists()
    assert json.loads((run_dir / "run.json").read_text())["world_size"] == 2

    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    runs = client.search_runs([r.experiment_id for r in [client.get_experiment_by_name("fsar-bench")]],
                              filter_string=f"tags.`fsar.run_key` = '{summary['run_key']}'")
    assert len(runs) == 1  # rank 0 alone logs
    params = runs[0].data.params
    assert params["world_size"] == "2" and params["dist_backend"] == "gloo" and runs[0].info.status == "FINISHED"
    assert params["train.episodes_per_update_total"] == "2"

    # one process, same weights, same episodes: the very same per-episode results
    cfg = load_config()
    cfg.data["results_dir"] = str(workdir / "single")  # its own embedding cache
    spec = RunSpec(method="protonet", dataset="toy-appearance", episodes=30, episode_batch=10, no_train=True,
                   init_from=str(run_dir / "final.pt"))
    single = execute(spec, cfg, log=lambda s: None)
    dist_df = pd.read_parquet(run_dir / "episodes.parquet")
    single_df = single.results
    assert list(dist_df["episode"]) == list(single_df["episode"]) == list(range(30))
    for col in ("query_ids", "labels", "preds", "logits"):
        assert [_plain(v) for v in dist_df[col]] == [_plain(v) for v in single_df[col]], col
    assert summary["accuracy"] == single.summary["accuracy"]
    chunks = lambda d: sorted(p.name for p in (d / "episodes").glob("chunk-*.parquet"))  # noqa: E731
    assert chunks(run_dir) == chunks(single.run_dir)  # rank 0 wrote the single-process chunks


def _eval_setup():
    from fsar_bench.config import BenchConfig
    from fsar_bench.data.cards import get_card
    from fsar_bench.data.source import VideoSource
    from fsar_bench.episodes.locks import make_set
    from fsar_bench.episodes.sampler import EpisodeSpec
    from fsar_bench.registry import create_method

    card = get_card("toy-appearance")
    torch.manual_seed(0)
    method = create_method("protonet", "tiny")
    method.set_dataset(card)
    episodes = make_set(card, EpisodeSpec(card.name, "test", 5, 1, 1, 8, card.seeds["test"]))
    return method, VideoSource.open(card, BenchConfig()), episodes


def _evaluate_both(out: Path) -> dict[str, pd.DataFrame]:
    from fsar_bench.engine.evaluate import EvalOptions, ResultStore, evaluate

    method, source, episodes = _eval_setup()
    distributed.broadcast_module(method)
    memory = evaluate(method, source, episodes, None, EvalOptions(batch_episodes=3))  # in-memory features
    store = ResultStore(out / f"nocache-{distributed.world_size()}")  # the reference protocol, resumable chunks
    nocache = evaluate(method, source, episodes, store, EvalOptions(cache=False, batch_episodes=3))
    return {"memory": memory, "nocache": nocache}


def _sharded_worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), FSAR_BENCH_DATA=data)
    torch.set_num_threads(1)
    assert distributed.init("cpu")
    try:
        for name, df in _evaluate_both(Path(out)).items():
            df.to_parquet(Path(out) / f"{name}-rank{rank}.parquet")  # every rank returns all results
    finally:
        distributed.shutdown()


def test_sharded_evaluate_without_cache_folder_and_reference_protocol(workdir, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ranks = torch.multiprocessing.spawn(_sharded_worker, args=(2, port, os.environ["FSAR_BENCH_DATA"], str(tmp_path)),
                                        nprocs=2, join=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = _evaluate_both(tmp_path)  # the one-process reference, while the ranks start up
    finally:
        torch.set_num_threads(threads)
        while not ranks.join():  # raises if a rank failed
            pass
    for name, ref in single.items():
        assert list(ref["episode"]) == list(range(8))
        for rank in (0, 1):
            got = pd.read_parquet(tmp_path / f"{name}-rank{rank}.parquet")
            for col in ("episode", "query_ids", "labels", "preds", "logits"):
                assert [_plain(v) for v in got[col]] == [_plain(v) for v in ref[col]], (name, rank, col)
    assert sorted(p.name for p in (tmp_path / "nocache-2").iterdir()) == \
        sorted(p.name for p in (tmp_path / "nocache-1").iterdir()) == ["chunk-000000-000002.parquet",
                                                                        "chunk-000003-000005.parquet",
                                                                        "chunk-000006-000007.parquet"]


def _plain(value):
    """Parquet gives nested arrays back as numpy object arrays: compare as nested lists."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    return [_plain(v) for v in value] if isinstance(value, list) else value


def test_episodes_per_update_is_the_total_over_the_ranks():
    """The recipes' episodes per update are per optimiser step over all processes (the papers' numbers),
    so W ranks share them and the LR milestones (in updates) do not move; an indivisible total is refused."""
    from fsar_bench.engine.train import _per_update
    from fsar_bench.errors import FsarError

    assert _per_update(16, 1) == _per_update(16, 4) == 16
    with pytest.raises(FsarError) as err:
        _per_update(6, 4)
    assert "episodes_per_update (6" in str(err.value) and "--nproc dividing 6" in err.value.fix
