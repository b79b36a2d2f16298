"""Efficiency profile of a method: parameters, FLOPs, latency and peak memory of one episode.

The reference cost of an episode is the no-cache protocol: embed every support and query video
of the episode (`Method.embed`), then score it (`Method.score_batch`). The evaluator's cache
makes the amortised cost lower; the profile reports the per-episode reference cost so that
methods compare on the same footing whatever the size of a dataset's test split.

FLOPs are counted with `torch.utils.flop_counter.FlopCounterMode` (FLOPs = 2 x multiply-adds;
matmuls, convolutions and attention; element-wise ops, norms and softmax are not counted, as in
the papers' GFLOPs/GMACs tables). Two gaps of the stock counter are closed here:

* SDPA on CPU dispatches to `aten._scaled_dot_product_flash_attention_for_cpu`, which has no
  formula (the CUDA kernels have one): we add the same formula for the CPU op (and its backward).
* `nn.MultiheadAttention` (and `nn.TransformerEncoderLayer`) in eval mode under `no_grad` take
  a fused fast path (`aten._native_multi_head_attention`) that counts nothing at all: the fast
  path is disabled while counting (`torch.backends.mha.set_fastpath_enabled(False)`) and
  restored afterwards; latency is timed with the fast path as configured.
"""

from __future__ import annotations

import contextlib
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils import flop_counter as _fc

from fsar_bench.protocol import Features, Method, map_features

__all__ = ["count_flops", "flop_counter", "profile_method", "peak_memory", "hardware_key"]


def _sdpa_forward_flops(query_shape, key_shape, value_shape, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """QK^T plus attention-times-V, as torch counts the CUDA SDPA kernels (softmax not counted)."""
    return _fc.sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_backward_flops(grad_out_shape, query_shape, key_shape, value_shape, *args: Any, out_shape: Any = None,
                         **kwargs: Any) -> int:
    return _fc.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def _attention_mapping() -> dict[Any, Callable[..., int]]:
    """FLOP formulas for the attention ops the stock registry misses (CPU flash, overrideable)."""
    aten = torch.ops.aten
    fwd = [getattr(aten, name, None) for name in ("_scaled_dot_product_flash_attention_for_cpu",
                                                   "_scaled_dot_product_fused_attention_overrideable")]
    bwd = [getattr(aten, name, None) for name in ("_scaled_dot_product_flash_attention_for_cpu_backward",
                                                   "_scaled_dot_product_fused_attention_overrideable_backward")]
    mapping: dict[Any, Callable[..., int]] = {}
    for op in fwd:
        if op is not None and op not in _fc.flop_registry:
            mapping[op] = _sdpa_forward_flops
    for op in bwd:
        if op is not None and op not in _fc.flop_registry:
            mapping[op] = _sdpa_backward_flops
    return mapping


@contextlib.contextmanager
def flop_counter() -> Iterator[_fc.FlopCounterMode]:
    """A `FlopCounterMode` that also counts CPU attention (see the module docstring).

    Usage: `with flop_counter() as fc: model(x)`, then `fc.get_total_flops()` (FLOPs, 2 x MACs).
    """
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with _fc.FlopCounterMode(display=False, custom_mapping=_attention_mapping()) as counter:
            yield counter
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """FLOPs (2 x MACs) of `fn(*args, **kwargs)`, run once under `no_grad` with `flop_counter`."""
    with torch.no_grad(), flop_counter() as counter:
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


# -- memory ------------------------------------------------------------------------------------
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kb(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _reset_cpu_peak() -> bool:
    """Reset the kernel's resident-set high-water mark (Linux); False when not possible."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _maxrss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


@contextlib.contextmanager
def peak_memory(device: torch.device | str) -> Iterator[dict[str, Any]]:
    """Measures the peak memory of the enclosed block into the yielded dict.

    Keys after the block: `peak_memory_mb` and `peak_memory_source`:
    'cuda_max_allocated' (tensors allocated by torch on the GPU, reset at entry),
    'cpu_vmhwm' (peak resident set of the whole process, high-water mark reset at entry), or
    'cpu_maxrss' (peak resident set since the process started: the reset is not possible here).
    """
    dev = torch.device(device)
    out: dict[str, Any] = {}
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        yield out
        torch.cuda.synchronize(dev)
        out["peak_memory_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
        out["peak_memory_source"] = "cuda_max_allocated"
        return
    reset = _reset_cpu_peak() and _status_kb("VmHWM") is not None
    yield out
    hwm = _status_kb("VmHWM") if reset else None
    if hwm is not None:
        out["peak_memory_mb"] = hwm / 1024
        out["peak_memory_source"] = "cpu_vmhwm"
    else:
        out["peak_memory_mb"] = _maxrss_mb()
        out["peak_memory_source"] = "cpu_maxrss"


# -- hardware ----------------------------------------------------------------------------------
def hardware_key(device: torch.device | str) -> dict[str, str]:
    """What the latency and memory were measured on; `hardware_key` is the one-line summary."""
    from fsar_bench.envinfo import _cpu_model, environment

    env = environment()
    dev = torch.device(device)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
    else:
        name = _cpu_model()
    threads = torch.get_num_threads()  # now, not when environment() was first cached
    cpu = _cpu_model()
    return {
        "device": str(dev), "device_name": name, "cpu_model": cpu, "threads": str(threads),
        "torch": env["torch"], "cuda": env["cuda"], "python": env["python"],
        "platform": env.get("platform", platform.platform()),
        "hardware_key": f"{dev.type}:{name} | {threads} threads | torch {env['torch']}",
    }


# -- the profile -------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cat(parts: list[Features]) -> Features:
    if isinstance(parts[0], Tensor):
        return torch.cat(parts)  # type: ignore[arg-type]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}  # type: ignore[index]


def _embed(method: Method, clips: Tensor, texts: Sequence[str] | None, batch: int | None) -> Features:
    n = clips.shape[0]
    step = batch or n
    parts = [method.embed(clips[i:i + step], list(texts[i:i + step]) if texts is not None else None)
             for i in range(0, n, step)]
    return _cat(parts)


def profile_method(method: Method, way: int = 5, shot: int = 1, query: int = 1, device: str = "cpu",
                   warmup: int = 2, repeats: int = 5, batch_videos: int | None = None,
                   seed: int = 0, progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Parameters, FLOPs, latency and peak memory of one `way`-way `shot`-shot episode.

    Inputs are random clips `randn [N, method.frames, 3, method.image_size, method.image_size]`
    (supports class-major, `query` queries per class); text-conditioned methods get the dummy
    class names 'class 0', 'class 1', ... One episode = embed the supports (with their class
    texts when `method.uses_text`), embed the queries, `score_batch`; `batch_videos` splits the
    embedding calls (default: all supports in one call, all queries in one).

    Returned keys (FLOPs = 2 x MACs, as counted by torch's FlopCounterMode):
    params_total, params_trainable; flops_per_video (embed of one query video), flops_embed_support,
    flops_embed_query, flops_matcher (score_batch), flops_per_episode (their sum),
    gmacs_per_frame (flops_per_video / 2 / frames / 1e9); latency_ms_median, latency_ms_p90,
    latency_ms_mean (per episode, after `warmup` untimed episodes); peak_memory_mb and
    peak_memory_source; way, shot, query, frames, image_size, videos_per_episode, repeats, and the
    hardware fields of `hardware_key` (device, device_name, cpu_model, threads, torch, ...).

    The method is moved to `device` and put in eval mode for the measurement (its training mode
    is restored afterwards). `progress(stage, done, total)` is told each counted part and episode
    (a full-size method takes minutes on a CPU).
    """
    report = progress or (lambda stage, done, total: None)
    if way < 1 or shot < 0 or query < 1:
        raise ValueError(f"need way >= 1, shot >= 0, query >= 1 (got {way}, {shot}, {query})")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0 (got {repeats}, {warmup})")
    dev = torch.device(device)
    was_training = method.training
    method.to(dev).eval()
    frames, size = int(method.frames), int(method.image_size)
    gen = torch.Generator().manual_seed(seed)
    n_s, n_q = way * shot, way * query

    def clips(n: int) -> Tensor:
        return torch.randn(n, frames, 3, size, size, generator=gen).to(dev)

    support, queries, one = clips(n_s), clips(n_q), clips(1)
    support_labels = torch.arange(way).repeat_interleave(shot).view(1, n_s).to(dev)
    names = [f"class {i}" for i in range(way)]
    texts = [names[i] for i in range(way) for _ in range(shot)] if method.uses_text else None

    def embed_support(q_feats: Features) -> Features:
        if n_s == 0:  # zero-shot: an empty support bank shaped like the query features
            return map_features(q_feats, lambda t: t[:0])
        return _embed(method, support, texts, batch_videos)

    def score(q_feats: Features, s_feats: Features) -> Tensor:
        add = lambda t: t.unsqueeze(0)  # noqa: E731
        return method.score_batch(map_features(q_feats, add), map_features(s_feats, add), support_labels, way,
                                  class_names=[names])

    def episode() -> Tensor:
        q_feats = _embed(method, queries, None, batch_videos)
        return score(q_feats, embed_support(q_feats))

    try:
        with torch.no_grad():
            # FLOPs: each part counted separately (the matcher on features computed outside).
            report("counting FLOPs", 0, 4)
            flops_video = count_flops(method.embed, one)
            report("counting FLOPs", 1, 4)
            q_feats = _embed(method, queries, None, batch_videos)
            with flop_counter() as c:
                _embed(method, queries, None, batch_videos)
            flops_query = int(c.get_total_flops())
            report("counting FLOPs", 2, 4)
            s_feats = embed_support(q_feats)
            with flop_counter() as c:
                embed_support(q_feats)
            flops_support = int(c.get_total_flops())
            report("counting FLOPs", 3, 4)
            with flop_counter() as c:
                logits = score(q_feats, s_feats)
            flops_matcher = int(c.get_total_flops())
            report("counting FLOPs", 4, 4)
            if tuple(logits.shape) != (1, n_q, way):
                raise RuntimeError(f"{type(method).__name__}.score_batch returned logits of shape "
                                   f"{tuple(logits.shape)}, expected {(1, n_q, way)}")
            del q_feats, s_feats, logits

            for i in range(warmup):
                episode()
                report("warm-up episodes", i + 1, warmup)
            _sync(dev)
            times: list[float] = []
            with peak_memory(dev) as mem:
                for _ in range(repeats):
                    _sync(dev)
                    t0 = time.perf_counter()
                    episode()
                    _sync(dev)
                    times.append((time.perf_counter() - t0) * 1000.0)
                    report("timed episodes", len(times), repeats)
    finally:
        method.train(was_training)

    lat = np.asarray(times)
    counts = method.parameter_counts()
    return {
        **counts,
        "flops_per_video": flops_video,
        "flops_embed_support": flops_support,
        "flops_embed_query": flops_query,
        "flops_matcher": flops_matcher,
        "flops_per_episode": flops_support + flops_query + flops_matcher,
        "gmacs_per_frame": flops_video / 2 / frames / 1e9,
        "latency_ms_median": float(np.median(lat)),
        "latency_ms_p90": float(np.percentile(lat, 90)),
        "latency_ms_mean": float(lat.mean()),
        **mem,
        "way": way, "shot": shot, "query": query, "frames": frames, "image_size": size,
        "videos_per_episode": n_s + n_q, "uses_text": bool(method.uses_text), "warmup": warmup,
        "repeats": repeats, "batch_videos": batch_videos or 0,
        **hardware_key(dev),
    }


def format_count(value: float, unit: str = "") -> str:
    """1.23 G / 456.7 M / 12.3 k style for tables."""
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= div:
            return f"{value / div:.2f} {suffix}{unit}"
    return f"{value:.0f} {unit}".rstrip()

