"""torch.distributed plumbing for `torchrun ... -m fsar_bench run` (docs/distributed.md).

A process group exists only when torchrun (or any launcher setting RANK / WORLD_SIZE /
LOCAL_RANK / MASTER_ADDR / MASTER_PORT) starts more than one process; otherwise every helper
here is a no-op that returns its single-process answer, so the single-process path costs nothing.
Backend: NCCL when the run's device is CUDA (each rank on `cuda:LOCAL_RANK`), gloo on CPU.

Gradients are averaged by hand (`all_reduce_gradients` after backward) instead of wrapping the
method in DistributedDataParallel: DDP hooks only `forward`, and methods train through their own
`training_loss`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

import torch
from torch import nn

T = TypeVar("T")
_BUCKET_BYTES = 32 << 20  # gradients are all-reduced in flat buckets of about this size


def _dist():
    import torch.distributed as dist

    return dist


def _env_world() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def active() -> bool:
    """True when a process group with more than one rank is up."""
    dist = _dist()
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Ranks in the process group (1 without one)."""
    return _dist().get_world_size() if active() else 1


def rank() -> int:
    """This process's rank in the process group (0 without one)."""
    return _dist().get_rank() if active() else 0


def launched_rank() -> int:
    """The rank torchrun gave this process (RANK), readable before `init`."""
    return int(os.environ.get("RANK", "0")) if _env_world() > 1 else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if _env_world() > 1 else 0


def is_main() -> bool:
    return rank() == 0


def backend() -> str:
    """The process group's backend ('' without one)."""
    return str(_dist().get_backend()) if active() else ""


def local_device(device: str) -> str:
    """The device of this rank: `cuda` (or `cuda:N`) becomes `cuda:LOCAL_RANK` under torchrun."""
    if _env_world() > 1 and device.startswith("cuda"):
        return f"cuda:{local_rank()}"
    return device


def init(device: str = "cpu") -> bool:
    """Join the process group torchrun describes (idempotent); False when running single-process."""
    dist = _dist()
    if _env_world() <= 1 or not dist.is_available():
        return False
    if dist.is_initialized():
        return True
    from fsar_bench.errors import FsarError

    missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise FsarError(f"WORLD_SIZE is set but {', '.join(missing)} is not",
                        "launch with torchrun (or `fsar-bench run --nproc N`), or unset WORLD_SIZE")
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(local_device(device))
    timeout = timedelta(seconds=float(os.environ.get("FSAR_DIST_TIMEOUT", "1800")))
    dist.init_process_group("nccl" if cuda else "gloo", init_method="env://", timeout=timeout)
    return True


def shutdown() -> None:
    dist = _dist()
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        _dist().barrier()


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the body first (e.g. generating a toy dataset), then the other ranks."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def shard(items: Sequence[T]) -> list[T]:
    """This rank's strided slice items[rank::world] (deterministic, disjoint, covering)."""
    return list(items[rank()::world_size()])


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (pickled; keep it modest or call it in rounds)."""
    if not active():
        return [obj]
    out: list[Any] = [None] * world_size()
    _dist().all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every rank."""
    if not active():
        return obj
    box = [obj if rank() == src else None]
    _dist().broadcast_object_list(box, src=src)
    return box[0]


def _comm_device() -> torch.device:
    if backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@torch.no_grad()
def _broadcast_tensors(tensors: Sequence[torch.Tensor], src: int = 0) -> None:
    for t in tensors:
        dev = _comm_device()
        direct = t.device == dev and t.is_contiguous()
        buf = t.detach() if direct else t.detach().to(dev).contiguous()
        _dist().broadcast(buf, src)
        if not direct:
            t.copy_(buf)


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy rank `src`'s parameters and buffers into every rank's module (as DDP does at start)."""
    if active():
        _broadcast_tensors([*module.parameters(), *module.buffers()], src)


def broadcast_buffers(module: nn.Module, src: int = 0) -> None:
    """Rank `src`'s buffers (BatchNorm running statistics) everywhere, like DDP's broadcast_buffers."""
    if active():
        _broadcast_tensors(list(module.buffers()), src)


@torch.no_grad()
def all_reduce_gradients(params: Sequence[torch.Tensor]) -> None:
    """Sum the gradients over ranks (callers pre-scale losses, so the sum is the average).

    A parameter with a gradient on any rank gets one on every rank (zeros where it had none), so
    the collectives line up; one with no gradient anywhere keeps `grad=None` (the optimiser skips it).
    """
    if not active() or not params:
        return
    dist = _dist()
    dev = _comm_device()
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=dev)
    dist.all_reduce(has)
    grads = []
    for p, n in zip(params, has.tolist()):
        if n:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
    buckets: dict[tuple, list[list[torch.Tensor]]] = {}
    sizes: dict[tuple, int] = {}
    for g in grads:
        key = (g.dtype, g.device)
        groups = buckets.setdefault(key, [[]])
        if sizes.get(key, 0) >= _BUCKET_BYTES:
            groups.append([])
            sizes[key] = 0
        groups[-1].append(g)
        sizes[key] = sizes.get(key, 0) + g.numel() * g.element_size()
    for groups in buckets.values():
        for group in groups:
            flat = torch.cat([g.reshape(-1) for g in group]).to(dev)
            dist.all_reduce(flat)
            offset = 0
            for g in group:
                g.copy_(flat[offset:offset + g.numel()].view_as(g))
                offset += g.numel()
