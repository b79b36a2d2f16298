"""Loading a finished run's results: from its run folder, or from MLflow by run id.

A run writes `summary.json` (the summary dict) and `episodes.parquet` (one row per test
episode) into its folder and logs both as MLflow artifacts at the artifact root; see
docs/results.md for the schemas.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from fsar_bench.errors import FsarError
from fsar_bench.results.record import RunRecord

SUMMARY = "summary.json"
EPISODES = "episodes.parquet"
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def _read(folder: Path, where: str) -> tuple[dict[str, Any], pd.DataFrame]:
    summary_path, episodes_path = folder / SUMMARY, folder / EPISODES
    for path in (summary_path, episodes_path):
        if not path.exists():
            raise FsarError(f"{where} has no {path.name} (an unfinished or failed run?)",
                            "pass the folder of a finished run (it holds summary.json and episodes.parquet)")
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise FsarError(f"{summary_path} is not readable JSON ({exc})", "re-run the command that wrote it") from None
    try:
        episodes = pd.read_parquet(episodes_path)
    except Exception as exc:  # noqa: BLE001  (pyarrow raises several types)
        raise FsarError(f"{episodes_path} is not a readable parquet file ({type(exc).__name__})",
                        "re-run the command that wrote it") from None
    if "accuracy" not in episodes.columns or "episode" not in episodes.columns:
        raise FsarError(f"{episodes_path} has no 'episode'/'accuracy' columns", "pass a fsar-bench run's results")
    return summary, episodes.sort_values("episode").reset_index(drop=True)


def _from_mlflow(run_id: str, uri: str) -> tuple[dict[str, Any], pd.DataFrame]:
    from fsar_bench.tracking import check_reachable, download_run_files

    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        raise FsarError(f"{run_id!r} is not a run folder, and there is no MLflow store at {uri} to look it up in",
                        "pass a run folder, or the store's --tracking-uri / --config")
    check_reachable(uri)
    with tempfile.TemporaryDirectory(prefix="fsar-run-") as tmp:
        download_run_files(run_id, uri, (SUMMARY, EPISODES), Path(tmp))
        return _read(Path(tmp), f"MLflow run {run_id}")


def load_run(ref: str | Path, tracking_uri: str | None = None,
             config: str | Path | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
    """(summary, per-episode results sorted by episode) of a run folder or an MLflow run id.

    `ref`: a run folder (or its summary.json), else an MLflow run id looked up in `tracking_uri`
    (default: the tracking URI of `fsar_bench.config.load_config(config)`); its artifacts
    summary.json and episodes.parquet are downloaded to a temporary folder.
    """
    path = Path(ref).expanduser()
    if path.is_file() and path.name in (SUMMARY, EPISODES):
        path = path.parent
    if path.is_dir():
        return _read(path, f"run folder {path}")
    if not _RUN_ID.match(str(ref)):
        raise FsarError(f"{str(ref)!r} is neither a run folder nor an MLflow run id",
                        "pass a folder under fsar-runs/ or a 32-character MLflow run id")
    if tracking_uri is None:
        from fsar_bench.config import load_config

        tracking_uri = load_config(config).tracking_uri
    return _from_mlflow(str(ref), tracking_uri)


def load_record(ref: str | Path, tracking_uri: str | None = None,
                config: str | Path | None = None) -> tuple[RunRecord, pd.DataFrame]:
    """`load_run`, with the summary read into a `RunRecord` (summary.json format 1 or 2)."""
    summary, episodes = load_run(ref, tracking_uri, config)
    return RunRecord.from_summary(summary), episodes
