"""`fsar-bench profile METHOD`: parameters, FLOPs, latency and peak memory of one episode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from fsar_bench.cli.run_cmd import JSON_HELP, SET_HELP, parse_sets
from fsar_bench.errors import FsarError


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FsarError(f"--device {name} asked for, but no CUDA device is available", "pass --device cpu")
    return name


def _random_weights_overrides(method: str, preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """`pretrained` off for the full preset (FLOPs, latency and memory do not depend on weights)."""
    from fsar_bench.registry import random_init_overrides

    if preset != "full" or "pretrained" in overrides:
        return {}
    return random_init_overrides(method, preset)


def build_method(method: str, preset: str, matcher: str | None, overrides: dict[str, Any]):
    from fsar_bench.registry import create_method

    extra = _random_weights_overrides(method, preset, overrides)
    try:
        return create_method(method, preset, matcher=matcher, **{**overrides, **extra})
    except FsarError as exc:
        if "fetch" in exc.problem:  # a pretrained download attempted (offline, hub down)
            raise FsarError(f"building {method} ({preset} preset) tried to fetch pretrained weights "
                            f"({exc.problem})",
                            "profiling does not need them: add --set pretrained=false (or the method's own "
                            "weights option set to null)") from None
        raise


def _table(result: dict[str, Any], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from fsar_bench.profile import format_count

    g = 1e9
    table = Table(title=title, show_header=False)
    table.add_row("episode", f"{result['way']}-way {result['shot']}-shot, {result['query']} query/class: "
                  f"{result['videos_per_episode']} videos of {result['frames']} x {result['image_size']}px frames")
    table.add_row("parameters", f"{result['params_total'] / 1e6:.2f} M total, "
                  f"{result['params_trainable'] / 1e6:.2f} M trainable")
    table.add_row("GFLOPs / video", f"{result['flops_per_video'] / g:.3f}  (embed of one video; FLOPs = 2 x MACs)")
    table.add_row("GFLOPs / episode", f"{result['flops_per_episode'] / g:.3f}  (embed supports "
                  f"{result['flops_embed_support'] / g:.3f} + queries {result['flops_embed_query'] / g:.3f} + "
                  f"matcher {format_count(result['flops_matcher'], 'FLOPs')})")
    table.add_row("GMACs / frame", f"{result['gmacs_per_frame']:.4g}")
    table.add_row("latency / episode", f"{result['latency_ms_median']:.1f} ms median, "
                  f"{result['latency_ms_p90']:.1f} ms p90 ({result['repeats']} runs after {result['warmup']} warm-up)")
    source = result["peak_memory_source"]
    where = {"cuda_max_allocated": "CUDA max allocated", "cpu_vmhwm": "process peak RSS",
             "cpu_maxrss": "process peak RSS since start"}.get(source, source)
    table.add_row("peak memory", f"{result['peak_memory_mb']:.0f} MB ({where})")
    table.add_row("weights", str(result.get("weights_source", "")))
    table.add_row("hardware", result["hardware_key"])
    Console().print(table)


def profile(
    method: str = typer.Argument(..., help="registered method name (`fsar-bench list methods`)"),
    preset: str = typer.Option("full", help="method preset: 'full' (the paper's network: minutes on a CPU) or "
                               "'tiny' (seconds)"),
    matcher: Optional[str] = typer.Option(None, help="swap the method's matcher, e.g. trx"),
    way: int = typer.Option(5, help="classes per episode"),
    shot: int = typer.Option(1, help="support videos per class (0 = zero-shot)"),
    query: int = typer.Option(1, help="query videos per class"),
    frames: Optional[int] = typer.Option(None, help="frames per video (overrides the preset)"),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="frame size in pixels (overrides the preset)"),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    repeats: int = typer.Option(5, help="timed episodes (after 2 warm-up episodes)"),
    warmup: int = typer.Option(2, help="untimed warm-up episodes"),
    batch_videos: Optional[int] = typer.Option(None, "--batch-videos", help="videos per embed call "
                                               "(default: all supports in one call, all queries in one)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="also write the profile to this JSON file"),
) -> None:
    """Profile METHOD on one random episode: parameters, FLOPs, latency, peak memory.

    The full preset (the default) is the paper's network, profiled with random weights (pretrained
    off: the costs do not depend on them); on a CPU it takes minutes, `--preset tiny` seconds. Once
    the model is built, the preset and each stage are reported on stderr.

    Examples:

    \b
      fsar-bench profile protonet
      fsar-bench profile protonet --preset tiny --matcher otam --output profile.json
      fsar-bench profile protonet --preset tiny --json > profile.json
      fsar-bench profile protonet --frames 16 --way 5 --shot 5
    """
    import sys

    from fsar_bench.profile import profile_method

    from fsar_bench.cli.run_cmd import check_method_inputs
    from fsar_bench.ui import json_document, stage_progress, stdout_to_stderr
    from fsar_bench.validate import check_int, check_output_file, check_run_numbers

    check_run_numbers(way=way, shot=shot, query=query, frames=frames)
    check_int("--image-size", image_size, 1, 224, "frame size in pixels")
    check_int("--repeats", repeats, 1, 5, "timed episodes")
    check_int("--warmup", warmup, 0, 2, "untimed warm-up episodes")
    check_int("--batch-videos", batch_videos, 1, 16, "videos per embed call")
    if output is not None:
        check_output_file(output, "--output")
    overrides = parse_sets(set_)
    if frames is not None:
        overrides["frames"] = frames
    if image_size is not None:
        overrides["image_size"] = image_size
    check_method_inputs(method, shot, overrides, matcher=matcher)
    dev = _device(device)
    hint = " (the paper's network; --preset tiny takes seconds)" if preset == "full" and dev == "cpu" else ""
    with stdout_to_stderr(json_out):
        m = build_method(method, preset, matcher, overrides)  # (a failure here stays a one-line error)
        print(f"profiling {method}, {preset} preset{hint}, {way}-way {shot}-shot on {dev}", file=sys.stderr,
              flush=True)
        with stage_progress() as progress:
            result = profile_method(m, way=way, shot=shot, query=query, device=dev, warmup=warmup,
                                    repeats=repeats, batch_videos=batch_videos, progress=progress)
    result = {"method": method, "matcher": getattr(m, "matcher_name", ""), "preset": preset,
              "weights_source": m.weights_source, **result}
    if output:
        from fsar_bench.io import atomic_write

        output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(output, json.dumps(result, indent=2, sort_keys=True) + "\n")
    if json_out:
        json_document(result)
        return
    _table(result, f"{method} ({result['matcher']}, {preset} preset) efficiency profile")
    if output:
        typer.echo(f"wrote {output}")


def register(app: typer.Typer) -> None:
    app.command(name="profile")(profile)
