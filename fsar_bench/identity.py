"""What decides a number besides the configuration: the code that ran and the hardware class.

Issue #17: a run key made of the command line alone let an edited plugin reuse the old number.
Here the code of a method or matcher class is named by a digest of its source files: the class's
module and every module of the same top-level package it imports, transitively (found with
`ast`, without importing anything new), so editing one line of a plugin's `embed` or matcher
changes the digest. Plugins add their distribution name and version. fsar-bench's own
result-deciding source (everything but the CLI, the leaderboard renderer and the launchers) is
digested as a whole. The hardware class names what changes floating-point results: device, CPU
ISA level torch dispatches to, thread count and torch version (docs/results.md §5).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import platform
import sys
from functools import lru_cache
from pathlib import Path

import torch

DIGEST_HEX = 16
_BENCH_EXCLUDE = ("cli", "leaderboard", "launch", "ui.py", "__main__.py")  # do not decide a number


def _imports(path: Path, module: str, is_package: bool) -> set[str]:
    """Absolute names of the modules (and parent packages) a source file imports."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = module if is_package else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    parents = {".".join(n.split(".")[:i]) for n in out for i in range(1, n.count(".") + 1)}
    return {n for n in out | parents if n}


def _source(name: str) -> tuple[Path, bool] | None:
    """(source file, is a package) of a module name, or None (not a module, or no .py source)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin), spec.submodule_search_locations is not None


def source_files(module: str) -> dict[str, Path]:
    """The module, its parent packages and every module of its top-level package it imports
    (transitively), by module name."""
    top = module.split(".")[0]
    start = {module} | {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
    found: dict[str, Path] = {}
    todo, seen = sorted(start), set(start)
    while todo:
        name = todo.pop()
        src = _source(name)
        if src is None:
            continue
        found[name] = src[0]
        for dep in _imports(src[0], name, src[1]):
            if dep.split(".")[0] == top and dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return found


def _digest(files: dict[str, Path]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].read_bytes() + b"\0")
    return "sha256:" + h.hexdigest()[:DIGEST_HEX]


def class_code(cls: type, origin: str = "") -> str:
    """`sha256:<hex>` of the source of `cls`'s module and what it imports from its own package;
    prefixed with `<distribution> <version> ` for a plugin (`origin`, from the registry entry)."""
    module = cls.__module__
    files = source_files(module) if module.split(".")[0] != "fsar_bench" else {}
    if module.split(".")[0] == "fsar_bench":  # the rest of fsar_bench is in `bench_code`
        files = {module: src[0]} if (src := _source(module)) else {}
    if not files and module in sys.modules and getattr(sys.modules[module], "__file__", None):
        files = {module: Path(sys.modules[module].__file__)}  # e.g. a module loaded from a path
    digest = _digest(files) if files else "no-source"
    own = origin in ("", "runtime") or origin.startswith("fsar-bench ")
    return digest if own else f"{origin} {digest}"


@lru_cache(maxsize=1)
def bench_code() -> str:
    """`<version>+sha256:<hex>` of fsar-bench's result-deciding source files."""
    from fsar_bench import __version__

    root = Path(__file__).resolve().parent
    files = {str(p.relative_to(root)): p for p in sorted(root.rglob("*.py"))
             if p.relative_to(root).parts[0] not in _BENCH_EXCLUDE and "__pycache__" not in p.parts}
    return f"{__version__}+{_digest(files)}"


def registry_origin(kind: str, name: str) -> str:
    """The registry's origin of a method or matcher name ('fsar-bench 0.1.0', a plugin's
    '<dist> <version>', 'runtime'); '' when unknown."""
    from fsar_bench import registry

    entries = registry.method_entries() if kind == "method" else registry.matcher_entries()
    entry = entries.get(name)
    return entry.origin if entry is not None else ""


def code_identity(method_name: str, method: object) -> dict[str, str]:
    """The `code` section of a run's identity: method, matcher and fsar-bench digests."""
    out = {"method": class_code(type(method), registry_origin("method", method_name))}
    matcher = getattr(method, "matcher", None)
    if matcher is not None:
        out["matcher"] = class_code(type(matcher), registry_origin("matcher", getattr(method, "matcher_name", "")))
    out["fsar_bench"] = bench_code()
    return out


def cpu_isa() -> str:
    """`<machine>-<ISA level torch dispatches its CPU kernels to>`, e.g. x86_64-AVX2."""
    try:
        level = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        level = "unknown"
    return f"{platform.machine() or 'unknown'}-{level}"


def hardware_class(device: str) -> str:
    """`<device>/<ISA>/<threads>t/torch-<version>`: what floating-point results depend on."""
    dev = str(device)
    if dev.startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(torch.device(dev)).replace("/", "-")
        dev = f"cuda:{name}+cuda-{torch.version.cuda}"
    elif dev.startswith("cuda"):
        dev = "cuda"
    return f"{dev}/{cpu_isa()}/{torch.get_num_threads()}t/torch-{torch.__version__}"


def configure_determinism(device: str, threads: int | None, tiny: bool) -> tuple[int | None, bool]:
    """Fix the thread count (default 1 for a tiny CPU run: reproducible across machines, and the
    fastest on shared cores) and turn on torch's deterministic algorithms for CPU runs (warn-only:
    an op without a deterministic kernel still runs). Returns (threads set or None, deterministic)."""
    cpu = str(device).startswith("cpu")
    if threads is None and cpu and tiny:
        threads = 1
    if threads:
        torch.set_num_threads(threads)
    if cpu:
        torch.use_deterministic_algorithms(True, warn_only=True)
    return threads, cpu


# what an identity holds that is not part of the group key: the keys themselves, derived or
# descriptive fields, the seed (it tells replicates apart) and options that never change a number;
# `spec` (the command's arguments, seed included) is keyed through the resolved fields it decides
_NOT_KEYED = ("run_key", "group_key", "leakage", "canonical_reason", "weights", "train_seed", "spec")
_TRAIN_NOT_KEYED = ("seed", "device", "num_workers")


def _hex(payload: object) -> str:
    import json

    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def run_keys(identity: dict, hardware: str, train_world_size: int = 1) -> tuple[str, str]:
    """(group key, run key) of a run identity (`dataclasses.asdict(Identity)`): the group key digests
    everything that decides the number (method and matcher code, fsar-bench's code, configuration,
    preset, overrides, data version, episodes) except the training seed; the run key adds the seed
    and the hardware class, so another seed or another hardware class is another replicate."""
    data = {k: v for k, v in identity.items() if k not in _NOT_KEYED}
    data["train_config"] = {k: v for k, v in dict(data.get("train_config") or {}).items()
                            if k not in _TRAIN_NOT_KEYED}
    sweep = {k: v for k, v in dict(data.pop("sweep", None) or {}).items() if k != "parent_run_id"}
    if sweep:  # a sweep point is not the plain run of its configuration (keys of plain runs stay as before)
        data["sweep"] = sweep
    if train_world_size > 1:  # W-fold updates (docs/distributed.md)
        data["train_world_size"] = train_world_size
    group = _hex(data)
    return group, _hex({"group": group, "seed": str(identity.get("train_seed", "")), "hardware": hardware})
