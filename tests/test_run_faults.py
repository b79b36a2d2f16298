"""Runner-side faults (issue #15): each is a one-line error with exit code 2, leaves nothing half-written,
and the next run of the same command resumes cleanly."""

from __future__ import annotations

import errno
import fcntl

import mlflow
import pytest

from fsar_bench.config import load_config

RUN = ("run", "protonet", "--dataset", "toy-appearance", "--episodes", "20", "--episode-batch", "10", "--no-train")


def _run_dir(workdir):
    (folder,) = [p for p in (workdir / "fsar-runs").iterdir() if p.name.startswith("protonet-toy-appearance-")]
    return folder


def _interrupted(folder):
    """Make a finished run folder look like one whose process died before the end (no summary.json,
    no merged episodes.parquet): a re-run resumes it instead of reusing the finished key (#17)."""
    for name in ("summary.json", "episodes.parquet"):
        (folder / name).unlink(missing_ok=True)
    return folder


def _statuses(run_key: str) -> list[str]:
    client = mlflow.MlflowClient(load_config().tracking_uri)
    exp = client.get_experiment_by_name(load_config()["experiment"])
    return sorted(r.info.status for r in client.search_runs([exp.experiment_id], f"tags.`fsar.run_key` = '{run_key}'"))


def _one_line_error(res, *words: str) -> None:
    assert res.code == 2, (res.code, res.err[-2000:])
    assert "Traceback" not in res.err
    lines = [line.strip() for line in res.err.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error")]
    assert len(errors) == 1 and errors[0] == lines[-1], res.err  # progress lines may precede it
    for word in words:
        assert word in errors[0], errors[0]


def test_disk_full_while_writing_results(workdir, cli, monkeypatch):
    """ENOSPC from the results writer: one line, the MLflow run ends FAILED, no temp file survives, the
    next run resumes and finishes."""
    import pandas as pd

    real = pd.DataFrame.to_parquet
    calls = {"n": 0}

    def full_disk(self, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= 2:  # the first chunk is written, the second hits a full disk halfway
            with open(path, "wb") as fh:
                fh.write(b"PAR1 partial")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full_disk)
    run = (*RUN, "--seed", "enospc")  # a run key of its own in the session's MLflow store
    res = cli(*run)
    _one_line_error(res, "no space left", "re-run the same command")
    folder = _run_dir(workdir)
    assert not [p for p in folder.rglob("*.tmp")]
    assert not (folder / "summary.json").exists()
    key = folder.name.rsplit("-", 1)[1]
    assert _statuses(key) == ["FAILED"]

    monkeypatch.setattr(pd.DataFrame, "to_parquet", real)
    res = cli(*run)
    assert res.code == 0, res.err
    assert (folder / "summary.json").exists() and not [p for p in folder.rglob("*.tmp")]
    assert _statuses(key) == ["FAILED", "FINISHED"]


@pytest.mark.parametrize("damaged", ["episodes/chunk-000000-000009.parquet", "checkpoint.pt"])
def test_damaged_run_folder_names_the_file(workdir, cli, damaged):
    assert cli(*RUN).code == 0
    folder = _interrupted(_run_dir(workdir))
    path = folder / damaged
    data = path.read_bytes()[:40] if path.exists() else b"PK\x03\x04 truncated"
    path.write_bytes(data)
    res = cli(*RUN)
    _one_line_error(res, damaged.rsplit("/", 1)[-1], "damaged", "delete it")
    path.unlink()
    res = cli(*RUN)
    assert res.code == 0, res.err


def test_stale_temp_files_of_a_killed_run_are_removed(workdir, cli):
    """kill -9 during evaluation leaves `.chunk-*.tmp` behind; the next (successful) run removes it."""
    assert cli(*RUN).code == 0
    folder = _interrupted(_run_dir(workdir))
    stale = [folder / "episodes" / ".chunk-000010-000019.parquet.99999.tmp", folder / ".summary.json.99999.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    assert cli(*RUN).code == 0
    assert not any(p.exists() for p in stale)


def test_second_identical_run_is_refused_while_the_first_runs(workdir, cli):
    """Two identical runs at once: the second is refused in one line (it does not mark the first KILLED)."""
    run = (*RUN, "--query", "2")  # a run key of its own in the session's MLflow store
    assert cli(*run).code == 0
    folder = _interrupted(_run_dir(workdir))
    key = folder.name.rsplit("-", 1)[1]
    with open(folder / ".lock", "w") as held:  # what a running first process holds
        fcntl.flock(held, fcntl.LOCK_EX)
        res = cli(*run)
    _one_line_error(res, "another fsar-bench process", "wait")
    assert _statuses(key) == ["FINISHED"]


def test_empty_real_dataset_root_reports_missing_videos_before_building_the_model(workdir, cli, tmp_path):
    """The full preset would download pretrained weights; the missing videos are reported first."""
    empty = tmp_path / "empty-hmdb51"
    empty.mkdir()
    res = cli("run", "protonet", "--dataset", "hmdb51", "--root", empty, "--preset", "full")
    _one_line_error(res, "missing")
    assert "weights" not in res.err.lower() and "download" not in res.err.lower()
