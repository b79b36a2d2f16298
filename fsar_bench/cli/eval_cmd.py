"""`fsar-bench eval METHOD --weights ...`: evaluate existing weights on the canonical test episodes.

The "test only" mode of every FSAR codebase. The weights are a fsar-bench run (its folder, or its
MLflow run id: `final.pt`, else `best.pt`), a plain state dict, or an authors' released checkpoint
loaded through a key map the method declares (`--official NAME`, docs/evaluation.md). The run
record says where the weights came from (file digest, format, the run that trained them) and
marks the run `evaluated_only`: leaderboards label it and never rank it as a reproduced training run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

import typer

from fsar_bench.cli.run_cmd import JSON_HELP, PRECISION_HELP, SET_HELP, WORKERS_HELP, checked_inputs
from fsar_bench.errors import FsarError

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def _run_folder(folder: Path) -> tuple[Path, str]:
    """(weights file, run key or '') of a fsar-bench run folder: final.pt, else best.pt."""
    for name in ("final.pt", "best.pt"):
        if (folder / name).is_file():
            summary = folder / "summary.json"
            key = ""
            if summary.is_file():
                try:
                    doc = json.loads(summary.read_text())
                    key = str(doc.get("mlflow_run_id") or doc.get("run_key") or "")
                except (OSError, ValueError):
                    key = ""
            return folder / name, key or folder.name.rsplit("-", 1)[-1]
    raise FsarError(f"run folder {folder} holds no final.pt or best.pt (the run did not train or did not finish)",
                    "pass the folder of a finished training run, or a weights file")


def resolve_weights(weights: str, official: Optional[str], tracking_uri: str, results_dir: Path) -> tuple[Path, dict]:
    """The weights file `--weights` names and its origin record (format, sha256, trained_by)."""
    from fsar_bench.engine.checkpoint import file_digest

    path = Path(weights).expanduser()
    if path.is_dir():
        if official:
            raise FsarError("--official applies to a released checkpoint file, not a run folder",
                            "drop --official, or pass the release's .pth file")
        file, trained_by = _run_folder(path)
        origin = {"format": "fsar-bench-run", "trained_by": trained_by}
    elif path.is_file():
        file, origin = path, {"format": f"official:{official}" if official else "state-dict"}
    elif _RUN_ID.match(weights):
        from fsar_bench.tracking import run_tags

        key = run_tags(weights, tracking_uri).get("fsar.run_key", "")
        folders = sorted(results_dir.glob(f"*-{key}")) if key else []
        if not folders:
            raise FsarError(f"MLflow run {weights} has no run folder under {results_dir}",
                            "pass --results-dir of the machine that trained it, or the run folder itself")
        file, _ = _run_folder(folders[0])
        origin = {"format": "fsar-bench-run", "trained_by": weights}
    else:
        raise FsarError(f"--weights {weights}: no such file or folder, and not an MLflow run id",
                        "pass a run folder, a weights file or a 32-hex-digit MLflow run id")
    origin.update(path=str(file.resolve()), sha256=file_digest(file))
    return file, origin


def evaluate_weights(
    method: str = typer.Argument(..., help="registered method name (`fsar-bench list methods`)"),
    weights: str = typer.Option(..., "--weights", "-w", help="a run folder, a weights file or an MLflow run id"),
    official: Optional[str] = typer.Option(None, "--official", help="the file is the authors' release: load it "
                                           "through this key map of the method (docs/evaluation.md)"),
    dataset: str = typer.Option("toy-appearance", "--dataset", "-d", help="test dataset"),
    way: Optional[int] = typer.Option(None, help="classes per episode (default: bench.yaml protocol.way = 5)"),
    shot: Optional[int] = typer.Option(None, help="support videos per class"),
    query: Optional[int] = typer.Option(None, help="query videos per class at test (canonical: 1)"),
    episodes: Optional[int] = typer.Option(None, help="test episodes (canonical: 10000)"),
    preset: Optional[str] = typer.Option(None, help="method preset the weights were trained with"),
    matcher: Optional[str] = typer.Option(None, help="the matcher the weights were trained with, e.g. trx"),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    precision: str = typer.Option("fp32", help=PRECISION_HELP),
    num_workers: Optional[int] = typer.Option(None, help=WORKERS_HELP),
    allow_missing: bool = typer.Option(False, "--allow-missing", help="evaluate despite missing videos "
                                       "(non-canonical)"),
    root: Optional[Path] = typer.Option(None, help="dataset root (overrides bench.yaml)"),
    config: Optional[Path] = typer.Option(None, help="bench.yaml to read (default ./bench.yaml)"),
    results_dir: Optional[Path] = typer.Option(None, help="where run folders go (default fsar-runs)"),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow tracking URI"),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Evaluate existing weights (a run, a state dict or an authors' release) on the test episodes.

    Examples:

    \b
      fsar-bench eval protonet --weights fsar-runs/protonet-toy-appearance-5w1s-0123abcd4567
      fsar-bench eval protonet --weights final.pt --dataset toy-motion --shot 5
      fsar-bench eval dmgal_ft --weights dmgal_ssv2.pth --official release -d ssv2_small
      fsar-bench eval protonet --matcher trx --weights trx.pt --official fsar-lib -d ssv2_small
    """
    from fsar_bench.validate import check_run_numbers

    check_run_numbers(way=way, shot=shot, query=query, episodes=episodes)
    overrides, cfg, shot = checked_inputs(method, shot, set_, config, results_dir, tracking_uri, precision,
                                          num_workers, preset, matcher, recipe_sets=False)
    proto = cfg["protocol"]
    if official:
        from fsar_bench.engine.checkpoint import official_map
        from fsar_bench.registry import method_class

        official_map(method_class(method), official)  # an unknown map name before any work
    file, origin = resolve_weights(weights, official, cfg.tracking_uri, cfg.results_dir)
    from fsar_bench.engine import distributed
    from fsar_bench.engine.runner import RunSpec, execute
    from fsar_bench.ui import stage_progress, stdout_to_stderr

    spec = RunSpec(method=method, dataset=dataset, way=proto["way"] if way is None else way, shot=shot,
                   query=proto["query"] if query is None else query,
                   episodes=proto["test_episodes"] if episodes is None else episodes, preset=preset,
                   matcher=matcher, overrides=overrides, no_train=True, allow_missing=allow_missing,
                   root=str(root) if root else None, init_from=str(file), official=official,
                   weights_origin=origin, num_workers=num_workers, precision=precision)
    from fsar_bench.cli.run_cmd import _report, _stderr_log

    with stdout_to_stderr(json_out), stage_progress() as progress:
        result = execute(spec, cfg, progress=progress, log=_stderr_log if json_out else print)
    distributed.shutdown()
    _report(result, json_out)


def register(app: typer.Typer) -> None:
    app.command(name="eval")(evaluate_weights)
