"""`fsar-bench run METHOD`: train episodically, evaluate on the canonical test episodes, log to MLflow."""

from __future__ import annotations

import re
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Optional

import typer
import yaml

from fsar_bench.errors import FsarError


SET_HELP = ("method hyperparameter override KEY=VALUE (repeatable); the matcher's as matcher.KEY=VALUE, "
            "e.g. --matcher otam --set matcher.lam=0.05")
JSON_HELP = "print one JSON document on stdout and nothing else (progress and messages go to stderr)"
_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)$")  # 1e-3, which YAML 1.1 reads as text
PRECISION_HELP = "fp32 (default, for fidelity), bf16 or fp16 (autocast on CUDA)"
WORKERS_HELP = "decoding workers (default: bench.yaml, else automatic); results do not depend on it"


def parse_sets(items: list[str]) -> dict:
    """`--set key=value` pairs, values parsed as YAML scalars (1e-3, true, null, [2, 3])."""
    from fsar_bench.ui import clip

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FsarError(f"--set {clip(item)} is not key=value", "write e.g. --set image_size=48")
        try:
            parsed = yaml.safe_load(value)
        except (yaml.YAMLError, ValueError, RecursionError):  # ValueError: an int of > 4300 digits
            raise FsarError(f"--set {clip(item)}: the value cannot be read as YAML",
                            "quote it as text (--set 'key=\"text\"') or write e.g. --set image_size=48") from None
        if isinstance(parsed, str) and _FLOAT.match(parsed.strip()):
            parsed = float(parsed)
        out[key.strip()] = parsed
    return out


def check_precision_workers(precision: str, num_workers: Optional[int]) -> None:
    """`--precision` and `--num-workers` of `run` and `eval`, before any work."""
    if precision not in ("fp32", "bf16", "fp16"):
        raise FsarError(f"--precision {precision} is not one of fp32, bf16, fp16", "pass --precision fp32")
    if num_workers is not None and num_workers < 0:
        raise FsarError(f"--num-workers {num_workers} is negative", "pass 0 (decode in this process) or more")


def check_precision_device(precision: str, device: str) -> None:
    """bf16/fp16 autocast on CUDA only (fsar_bench.engine.evaluate.autocast): on a CPU device the
    number would be fp32's under another label, so it is refused."""
    import torch

    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if precision != "fp32" and not cuda:
        raise FsarError(f"--precision {precision} autocasts on CUDA, but this run's device is {device} "
                        "without a GPU", "drop --precision (fp32) or run on a CUDA device")


def cli_config(config: Optional[Path], results_dir: Optional[Path], tracking_uri: Optional[str]):
    """bench.yaml with the --results-dir and --tracking-uri flags applied (the flags win); the
    tracking URI is checked here, before any run folder exists."""
    from fsar_bench.config import load_config
    from fsar_bench.validate import check_tracking_uri

    cfg = load_config(config)
    if results_dir:
        cfg.data["results_dir"] = str(results_dir)
    if tracking_uri:
        cfg.data["tracking_uri"] = tracking_uri
    check_tracking_uri(cfg.tracking_uri, origin=cfg.tracking_uri_origin)
    return cfg


def check_method_inputs(method: str, shot: int, overrides: dict, cfg=None, preset: Optional[str] = None,
                        shot_source: str = "--shot 0", matcher: Optional[str] = None) -> None:
    """Zero-shot support and the names and types of the --set values (and of bench.yaml's method
    overrides), against what the method class (and, for `matcher.<key>`, the matcher class) declares."""
    from fsar_bench.registry import list_matchers, list_methods, matcher_class, method_class
    from fsar_bench.validate import check_overrides, check_zero_shot

    if method not in list_methods() and method in list_matchers():
        raise FsarError(f"{method!r} is a matcher, not a method",
                        f"run a method with it: fsar-bench run METHOD --matcher {method} (`fsar-bench list methods`)")
    cls = method_class(method)
    if matcher is not None:
        matcher_class(matcher)  # an unknown --matcher before its hyperparameters
    check_zero_shot(method, cls, shot, shot_source)
    check_overrides(method, cls, overrides, matcher=matcher)
    if cfg is not None:
        for name in ([preset] if preset else list(cls.presets)):
            check_overrides(method, cls, cfg.method_overrides(method, name),
                            f"methods.{method}.{name} in {cfg.source}", matcher=matcher)


def checked_inputs(method: str, shot: Optional[int], set_: list[str], config: Optional[Path],
                   results_dir: Optional[Path], tracking_uri: Optional[str], precision: str,
                   num_workers: Optional[int], preset: Optional[str], matcher: Optional[str],
                   recipe_sets: bool) -> tuple[dict, Any, int]:
    """The checks `run` and `eval` share, before any work: (--set overrides, config, shot with the
    protocol's default). `recipe_sets`: `--set` may also hold recipe fields (`run` trains; `eval` does not)."""
    check_precision_workers(precision, num_workers)
    overrides = parse_sets(set_)
    cfg = cli_config(config, results_dir, tracking_uri)
    check_precision_device(precision, str(cfg["device"]))
    shot = cfg["protocol"]["shot"] if shot is None else shot
    if recipe_sets:
        from fsar_bench.recipes import method_sets

        check_method_inputs(method, shot, method_sets(overrides), cfg, preset, matcher=matcher)
    else:
        check_method_inputs(method, shot, overrides, cfg, preset, matcher=matcher)
    return overrides, cfg, shot


def run(
    ctx: typer.Context,
    method: str = typer.Argument(..., help="registered method name (`fsar-bench list methods`)"),
    dataset: str = typer.Option("toy-appearance", "--dataset", "-d", help="test dataset"),
    way: Optional[int] = typer.Option(None, help="classes per episode (default: bench.yaml protocol.way = 5)"),
    shot: Optional[int] = typer.Option(None, help="support videos per class; 0 = zero-shot"),
    query: Optional[int] = typer.Option(None, help="query videos per class at test (canonical: 1)"),
    episodes: Optional[int] = typer.Option(None, help="test episodes (canonical: 10000)"),
    preset: Optional[str] = typer.Option(None, help="method preset: 'full' (paper) or 'tiny' (CPU); default "
                                         "tiny on toy datasets, full on real ones"),
    matcher: Optional[str] = typer.Option(None, help="swap the method's matcher, e.g. trx"),
    frames: Optional[int] = typer.Option(None, help="frames per video (overrides the preset)"),
    train_dataset: Optional[str] = typer.Option(None, help="cross-dataset: train on this dataset"),
    steps: Optional[int] = typer.Option(None, help="training episodes (0: evaluate without training)"),
    lr: Optional[float] = typer.Option(None, help="learning rate"),
    seed: list[str] = typer.Option([], "--seed", help="training seed (episodes, augmentation, init order); "
                                   "repeatable: one replicate per seed, reported as a group"),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="train and evaluate N replicates (seeds derived from "
                                        "--seed or the default seed: S, S.1, S.2, ...) and report the group: mean, "
                                        "between-seed SD, hierarchical CI, variance split (docs/statistics.md)"),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    precision: str = typer.Option("fp32", help=PRECISION_HELP + " of the evaluation; training stays fp32"),
    num_workers: Optional[int] = typer.Option(None, help=WORKERS_HELP),
    no_train: bool = typer.Option(False, "--no-train", help="evaluate the initial weights"),
    no_cache: bool = typer.Option(False, "--no-cache", help="reference protocol: re-embed every episode's videos"),
    allow_missing: bool = typer.Option(False, "--allow-missing", help="run despite missing videos (non-canonical)"),
    episode_batch: int = typer.Option(500, help="episodes per results chunk and at most per matcher call (calls are cut further to keep gathered features under 256 MB)"),
    root: Optional[Path] = typer.Option(None, help="dataset root (overrides bench.yaml); also the training root when training on the same dataset"),
    train_root: Optional[Path] = typer.Option(None, help="training dataset root for --train-dataset (cross-dataset)"),
    config: Optional[Path] = typer.Option(None, help="bench.yaml to read (default ./bench.yaml)"),
    results_dir: Optional[Path] = typer.Option(None, help="where run folders go (default fsar-runs)"),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow tracking URI"),
    nproc: int = typer.Option(1, "--nproc", help="processes on this machine (one per GPU): re-runs this "
                              "command under torchrun for DDP training and sharded evaluation"),
    launcher: str = typer.Option("local", help="local (run here) or submitit (run as a cluster job; bench.yaml "
                                 "launcher: section, docs/cluster.md)"),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="a named variant of the method's training recipe, "
                                         "e.g. dmgal_ft --recipe release (docs/recipes.md)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the resolved recipe (every value with its "
                                 "source), method hyperparameters and weights, then exit without running or writing"),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP + "; the document is the run's summary.json "
                                  "plus run_dir"),
) -> None:
    """Train METHOD episodically and evaluate it on the frozen canonical test episodes.

    Examples:

    \b
      fsar-bench run protonet --dataset toy-appearance --way 5 --shot 1
      fsar-bench run protonet --dataset toy-appearance --seeds 5
      fsar-bench run dmgal_ft --dataset ucf101 --way 5 --shot 1
      fsar-bench run dmgal_ft --dataset ucf101 --dry-run
      fsar-bench run protonet --dataset toy-motion --matcher otam --steps 300
      fsar-bench run protonet --dataset ssv2_full --nproc 4
      fsar-bench run protonet --matcher otam --set matcher.lam=0.05
      fsar-bench run protonet --steps 20 --episodes 100 --json > run.json
      fsar-bench run protonet --dataset ssv2_small --precision bf16 --num-workers 8
    """
    from fsar_bench.validate import check_run_numbers

    # every check before any work (and before torchrun starts N copies of this command)
    check_run_numbers(way=way, shot=shot, query=query, episodes=episodes, steps=steps, frames=frames,
                      episode_batch=episode_batch, lr=lr, nproc=nproc)
    overrides, cfg, shot = checked_inputs(method, shot, set_, config, results_dir, tracking_uri, precision,
                                          num_workers, preset, matcher, recipe_sets=True)
    proto = cfg["protocol"]
    if recipe is not None:
        from fsar_bench.data.cards import get_card
        from fsar_bench.recipes import check_variant
        from fsar_bench.registry import method_class

        check_variant(method_class(method), recipe, preset or ("tiny" if get_card(dataset).is_toy else "full"))
    from fsar_bench.launch import check_launcher

    check_launcher(launcher, cfg)
    if launcher != "local" and nproc > 1:
        raise FsarError("--nproc starts torchrun on this machine, not in a cluster job",
                        "drop --nproc and set launcher.gpus_per_job in bench.yaml (docs/cluster.md)")
    if nproc > 1 and not dry_run:
        sys.exit(_launch_torchrun(ctx, nproc))
    from fsar_bench.engine.runner import RunSpec, execute
    from fsar_bench.ui import stage_progress

    seed_list = group_seeds(seed, seeds, cfg)  # None: one plain run
    train = {k: v for k, v in {"steps": steps, "lr": lr, "seed": seed[0] if seed else None}.items() if v is not None}
    spec = RunSpec(
        method=method, dataset=dataset, way=proto["way"] if way is None else way, shot=shot,
        query=proto["query"] if query is None else query,
        episodes=proto["test_episodes"] if episodes is None else episodes, preset=preset,
        matcher=matcher, overrides=overrides, frames=frames, train_dataset=train_dataset, train=train,
        no_train=no_train, cache=not no_cache, allow_missing=allow_missing,
        root=str(root) if root else None, train_root=str(train_root) if train_root else None,
        episode_batch=episode_batch, recipe=recipe, precision=precision, num_workers=num_workers,
    )
    if dry_run:  # before torchrun or a cluster job: resolving needs neither
        from fsar_bench.engine.runner import dry_run as describe

        print(describe(spec, cfg))
        return
    from fsar_bench.ui import stdout_to_stderr

    if launcher != "local" and seed_list is not None:
        raise FsarError("--seeds / several --seed run here, not as cluster jobs",
                        "drop --launcher, or submit one job per --seed")
    if launcher != "local":  # one job through submitit; the job writes the same run folder and MLflow run
        from fsar_bench.launch import launch_points

        with stdout_to_stderr(json_out):
            result = launch_points(f"run-{method}-{dataset}", [(method, spec)], cfg, None)[0]
        _report(result, json_out)
        return
    from fsar_bench.engine import distributed

    main = distributed.launched_rank() == 0  # under torchrun, rank 0 alone reports
    try:
        with stdout_to_stderr(json_out), stage_progress() if main else nullcontext(None) as progress:
            log = _stderr_log if json_out else print
            if seed_list is not None:
                from fsar_bench.engine.replicates import run_group

                result = run_group(spec, seed_list, cfg, progress=progress, log=log)
            else:
                result = execute(spec, cfg, progress=progress, log=log)
    finally:
        distributed.shutdown()
    if main and seed_list is not None:
        _report_group(result, json_out)
    elif main:
        _report(result, json_out)
        if not json_out and result.summary.get("trained"):
            from fsar_bench.results.groups import ONE_SEED

            print(f"{ONE_SEED}: the ± above covers episode sampling only; add --seeds 5 to measure it")
    if main and not json_out:
        print_ui_hint(cfg)


def print_ui_hint(cfg) -> None:
    """The line saying how to open the runs in the MLflow UI (local stores only)."""
    from fsar_bench.tracking import ui_hint

    line = ui_hint(cfg.tracking_uri, cfg["experiment"])
    if line:
        print(line)


def _report(result, json_out: bool) -> None:
    from fsar_bench.ui import json_document, print_summary

    if json_out:
        json_document(run_document(result))
    else:
        print_summary(result.summary)


def group_seeds(seed: list[str], seeds: Optional[int], cfg) -> Optional[list[str]]:
    """The seeds of a replicate group, or None for one plain run (no --seeds, at most one --seed)."""
    if seeds is None:
        return list(seed) if len(seed) > 1 else None
    if len(seed) > 1:
        raise FsarError(f"--seeds {seeds} with {len(seed)} --seed values: give one or the other",
                        "use --seeds N (optionally with one --seed as the base) or list each --seed")
    from fsar_bench.engine.replicates import replicate_seeds

    base = seed[0] if seed else str((cfg["train"] or {}).get("seed", "0"))
    return replicate_seeds(base, seeds)


def _report_group(result, json_out: bool) -> None:
    """Each replicate's line, then the group statistics (docs/statistics.md)."""
    from fsar_bench.ui import json_document

    if json_out:
        json_document({**result.document(), "group_dir": str(result.group_dir)})
        return
    for r in result.runs:
        s = r.summary
        print(f"  seed {s.get('train_seed')}: {s.get('accuracy', float('nan')):.2f} ± {s.get('ci95', float('nan')):.2f} %"
              f"  ({s.get('hardware_class', '')}; {r.run_dir})")
    print(f"group {result.name} (group key {result.group_key}):")
    for line in result.summary.lines():
        print(f"  {line}")
    if result.group_dir is not None:
        print(f"  -> {result.group_dir}  (MLflow parent run {result.mlflow_run_id})")


def _stderr_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_document(result) -> dict:
    """The document `run --json` prints: the run's summary (summary.json) plus its folder. The one
    place the CLI reads the runner's result object (RunResult, or a launched point with a summary)."""
    summary = getattr(result, "summary", None)
    doc = dict(summary) if summary is not None else dict(result.record.to_summary())
    run_dir = getattr(result, "run_dir", None) or doc.get("run_dir")
    if run_dir is not None:
        doc["run_dir"] = str(run_dir)
    return doc


def _launch_torchrun(ctx: typer.Context, nproc: int) -> int:
    """Re-run this `run` command (minus --nproc) as `python -m torch.distributed.run --standalone
    --nproc_per_node N -m fsar_bench run ...`; returns its exit code."""
    import os
    import shlex
    import subprocess

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise FsarError("--nproc starts torchrun itself, but this process already runs under torchrun",
                        "drop --nproc when launching with torchrun")
    args: list[str] = []  # the given arguments, as they were given
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if param.name == "nproc" or getattr(source, "name", "") not in ("COMMANDLINE", "ENVIRONMENT"):
            continue
        value = ctx.params[param.name]
        if param.param_type_name == "argument":
            args.append(str(value))
        elif param.is_flag:
            flag = param.opts if value else param.secondary_opts
            args += flag[:1]
        else:
            for item in (value if param.multiple else [value]):
                args += [param.opts[0], str(item)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "fsar_bench", "run", *args]
    print("launching: " + shlex.join(cmd[1:]), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=False).returncode


def register(app: typer.Typer) -> None:
    app.command(name="run")(run)
