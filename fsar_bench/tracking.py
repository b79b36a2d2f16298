"""The one module that talks to MLflow.

Default store: `sqlite:///<results_dir>/mlflow.db` (results_dir defaults to ./fsar-runs), with
artifacts in `<results_dir>/mlartifacts`; any tracking URI works (`--tracking-uri`,
`MLFLOW_TRACKING_URI`, bench.yaml). View with
`mlflow ui --backend-store-uri sqlite:///fsar-runs/mlflow.db` (binds to 127.0.0.1).
A remote server that does not answer is detected before any training starts.
"""

from __future__ import annotations

import fcntl
import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fsar_bench.errors import FsarError

# The experiment kind for MLflow versions whose UI reads this tag to pick the classic runs table.
# MLflow 3.17's UI ignores it: its GenAI / "Model training" switch comes from the URL parameter
# `workflowType=machine_learning`, else the browser's last choice (default GenAI); see RUNS_VIEW_QUERY.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}

# MLflow 3.17 keeps the runs table's columns in the browser (localStorage), so a fresh browser shows
# no metric column. A saved view is an experiment tag `mlflow.sharedViewState.<id>` holding
# {name, createdAt, updatedAt, state: JSON of search facets + UI state}; the UI lists it under "Views"
# and opens it at `#/experiments/<experiment id>/runs?viewStateShareKey=<id>` (read from its JS bundle).
LEADERBOARD_VIEW = "fsar-leaderboard"
LEADERBOARD_VIEW_NAME = "fsar-bench leaderboard"
LEADERBOARD_COLUMNS = ("metrics.`accuracy`", "metrics.`ci95`", "params.`method`", "params.`matcher`",
                       "params.`dataset`", "params.`way`", "params.`shot`", "params.`preset`")
# the query of the address that opens it in the classic view: http://HOST:PORT/#/experiments/ID/runs?...
RUNS_VIEW_QUERY = f"workflowType=machine_learning&viewStateShareKey={LEADERBOARD_VIEW}"


def ui_hint(uri: str, experiment: str) -> str | None:
    """One line saying how to browse `experiment` of a local store (sqlite or file): the `mlflow ui`
    command and the address of the "fsar-bench leaderboard" view with the experiment's real id; None
    for a server or database store (its own address applies) or an experiment that does not exist."""
    import shlex

    if not uri.startswith(("sqlite:", "file:")) and "://" in uri:
        return None
    exp = _client(uri).get_experiment_by_name(experiment)
    if exp is None:
        return None
    return (f"browse: mlflow ui --backend-store-uri {shlex.quote(uri)}  then open "
            f"http://127.0.0.1:5000/#/experiments/{exp.experiment_id}/runs?{RUNS_VIEW_QUERY}")


def leaderboard_view_tag() -> tuple[str, str]:
    """(key, value) of the experiment tag that saves the "fsar-bench leaderboard" view: runs sorted by
    accuracy, with accuracy, ci95 and the setting's params as columns."""
    now = int(time.time() * 1000)
    name, created, duration = ("attributes.`Run Name`", "attributes.`Created`", "attributes.`Duration`")
    widths = dict(zip((name, created, *LEADERBOARD_COLUMNS, duration),  # pixels: all fit in 1600 px
                      (250, 125, 140, 140, 90, 90, 120, 60, 60, 70, 90), strict=True))
    state = {"orderByKey": "metrics.`accuracy`", "orderByAsc": False, "selectedColumns": list(LEADERBOARD_COLUMNS),
             "columnOrder": list(widths), "columnWidths": widths}
    value = {"name": LEADERBOARD_VIEW_NAME, "createdAt": now, "updatedAt": now, "state": json.dumps(state)}
    return f"mlflow.sharedViewState.{LEADERBOARD_VIEW}", json.dumps(value)


os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
for _name in ("alembic", "mlflow"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):  # noqa: S310 (user-given URI)
            pass
    except urllib.error.HTTPError:
        return  # the server answered
    except (http.client.InvalidURL, ValueError) as exc:  # e.g. a non-numeric port
        raise FsarError(f"MLflow tracking URI {uri!r} is not a valid URL ({exc})",
                        "write it as http://HOST:PORT, or drop it to use the local store") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise FsarError(f"MLflow tracking server {uri} is unreachable ({getattr(exc, 'reason', exc)})",
                        "start it, fix --tracking-uri / MLFLOW_TRACKING_URI, or drop it to use the local store") from None


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """For a local sqlite store: create its folder and hold `<db>.lock` while the schema and the
    experiment are created, so runs started together in a fresh results folder do not race."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri[len("sqlite:///"):])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class Tracker:
    """A run in an MLflow experiment; `end` records FINISHED, FAILED or KILLED."""

    def __init__(self, uri: str, experiment: str, artifact_root: Path | None = None) -> None:
        check_reachable(uri)
        import mlflow

        for name in ("mlflow", "alembic"):  # mlflow sets its own levels on import; keep the terminal quiet
            logging.getLogger(name).setLevel(logging.WARNING)
        self.mlflow = mlflow
        mlflow.set_tracking_uri(uri)
        with _store_lock(uri):  # concurrent first runs would race creating the sqlite schema
            self.client = mlflow.MlflowClient(uri)
            exp = self.client.get_experiment_by_name(experiment)
            view_key, view = leaderboard_view_tag()
            if exp is None:
                location = artifact_root.resolve().as_uri() if artifact_root else None
                self.experiment_id = self.client.create_experiment(experiment, artifact_location=location,
                                                                   tags={**EXPERIMENT_KIND, view_key: view})
            else:
                self.experiment_id = exp.experiment_id
                missing = {**EXPERIMENT_KIND, view_key: view}  # made by an older fsar-bench: add what it lacks
                for k, v in missing.items():
                    if not exp.tags.get(k):  # a view the user changed in the UI is kept
                        self.client.set_experiment_tag(self.experiment_id, k, v)
        self.run_id: str | None = None
        self.uri = uri

    def start(self, name: str, params: dict[str, Any], tags: dict[str, str], parent: str | None = None) -> str:
        all_tags = dict(tags)
        if parent:
            all_tags["mlflow.parentRunId"] = parent
        all_tags["mlflow.runName"] = name
        run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=name)
        self.run_id = run.info.run_id
        self.log_params(params)
        return self.run_id

    def reopen(self, tag: str, value: str, parent: str | None = None) -> bool:
        """Continue the newest run tagged `tag` = `value` (a group's or a sweep's parent run, found again
        when the command is re-run or resumed, so it adds no run): mark it RUNNING, nest it under
        `parent` when given. False when there is none (then `start` one)."""
        found = self.client.search_runs([self.experiment_id], f"tags.`{tag}` = '{value}'", max_results=1,
                                        order_by=["attributes.start_time DESC"])
        if not found:
            return False
        self.run_id = found[0].info.run_id
        self.client.update_run(self.run_id, status="RUNNING")
        if parent:
            self.client.set_tag(self.run_id, "mlflow.parentRunId", parent)
        return True

    def mark_stale_runs_killed(self, run_key: str) -> int:
        """Runs of this run key still RUNNING belong to a process that died (kill -9, power loss):
        record them as KILLED before the resumed run starts."""
        stale = self.client.search_runs([self.experiment_id],
                                        filter_string=f"tags.`fsar.run_key` = '{run_key}' and attributes.status = 'RUNNING'")
        for run in stale:
            self.client.set_terminated(run.info.run_id, status="KILLED")
        return len(stale)

    def finished_run(self, run_key: str) -> str | None:
        """The MLflow run id of the newest FINISHED run of this run key, or None: a re-run of a finished
        key reuses it instead of adding a duplicate run."""
        runs = self.client.search_runs([self.experiment_id], max_results=1, order_by=["attributes.start_time DESC"],
                                       filter_string=f"tags.`fsar.run_key` = '{run_key}' and attributes.status = 'FINISHED'")
        return runs[0].info.run_id if runs else None

    def log_dataset_input(self, name: str, digest: str, source: str, context: str,
                          profile: dict[str, Any] | None = None) -> None:
        """Record a dataset (or episode set) the run read as an MLflow input, with its digest: the UI's
        "Datasets used" column and the run page show which data and which episodes were scored."""
        import json

        from mlflow.entities import Dataset, DatasetInput, InputTag

        ds = Dataset(name=name, digest=digest[:36], source_type="local", source=json.dumps({"uri": source}),
                     profile=json.dumps(profile or {}))
        self.client.log_inputs(self.run_id, datasets=[DatasetInput(ds, [InputTag("mlflow.data.context", context)])])

    def log_table(self, frame: Any, artifact_file: str) -> None:
        """A small table (pandas DataFrame) as an MLflow table artifact the UI previews (parquet it does not)."""
        self.client.log_table(self.run_id, data=frame, artifact_file=artifact_file)

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def log_new_params(self, params: dict[str, Any]) -> None:
        """Log the params the run does not have yet (a reopened parent run keeps the values it has:
        MLflow params are write-once)."""
        have = self.client.get_run(self.run_id).data.params
        self.log_params({k: v for k, v in params.items() if k not in have})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items()]
        if items:
            self.client.log_batch(self.run_id, metrics=items)

    def set_tags(self, tags: dict[str, str]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, v)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        if self.run_id:
            self.client.set_terminated(self.run_id, status=status)


def _client(uri: str) -> Any:
    check_reachable(uri)
    import mlflow

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return mlflow.MlflowClient(uri)


def finished_runs(uri: str, experiment: str, dataset: str | None = None) -> Iterator[Any] | None:
    """The FINISHED runs (`mlflow.entities.Run`) of `experiment`, of one dataset's tag when given;
    None when the experiment does not exist."""
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    filters = ["attributes.status = 'FINISHED'"]
    if dataset:
        filters.append(f"tags.`fsar.dataset` = '{dataset}'")

    def pages() -> Iterator[Any]:
        token = None
        while True:
            page = client.search_runs([exp.experiment_id], " and ".join(filters), max_results=1000, page_token=token)
            yield from page
            token = page.token
            if not token:
                return
    return pages()


def child_runs(uri: str, run_id: str) -> list[str]:
    """The FINISHED child runs of an MLflow parent run (a sweep's points, a seed group's replicates),
    oldest first; a child that is itself a seed group (a point of a sweep run with --seeds) stands
    for its replicates; [] when it has none."""
    client = _client(uri)
    try:
        parent = client.get_run(run_id)
    except Exception:  # noqa: BLE001 (not a run of this store: the caller tries it as something else)
        return []
    runs = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}' and "
                              "attributes.status = 'FINISHED'", order_by=["attributes.start_time ASC"])
    return [c for r in runs for c in (child_runs(uri, r.info.run_id) if r.data.tags.get("fsar.kind") == "group"
                                      else [r.info.run_id])]


def download_run_files(run_id: str, uri: str, names: tuple[str, ...], folder: Path) -> None:
    """Download the artifacts `names` of MLflow run `run_id` into `folder`; FsarError when the run or a
    file is missing."""
    from mlflow.exceptions import MlflowException

    client = _client(uri)
    try:
        client.get_run(run_id)
    except MlflowException:
        raise FsarError(f"no MLflow run {run_id!r} in {uri}",
                        "check the run id (`mlflow ui`), or pass --tracking-uri of the store that holds it") from None
    for name in names:
        try:
            client.download_artifacts(run_id, name, str(folder))
        except (MlflowException, OSError) as exc:
            raise FsarError(f"MLflow run {run_id} has no artifact {name} ({type(exc).__name__})",
                            "the run did not finish; compare finished runs") from None


def run_tags(run_id: str, uri: str) -> dict[str, str]:
    """The tags of MLflow run `run_id` (`fsar-bench eval --weights RUN_ID` finds its run folder by
    `fsar.run_key`); FsarError when the store has no such run."""
    from mlflow.exceptions import MlflowException

    try:
        return dict(_client(uri).get_run(run_id).data.tags)
    except MlflowException:
        raise FsarError(f"no MLflow run {run_id!r} in {uri}",
                        "check the run id (`mlflow ui`), or pass --tracking-uri of the store that holds it") from None
