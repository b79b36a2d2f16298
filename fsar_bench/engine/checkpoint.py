"""Checkpoints hold what training changes, not the frozen backbone.

A parameter-efficient method (DMGAL-Adapter, MA-FSAR, AIM) tunes a few million of its hundreds
of millions of weights; saving the frozen CLIP encoder in `checkpoint.pt`, `best.pt` and
`final.pt` of every run would write ~600 MB each time. A checkpoint stores the trainable
parameters and all buffers, plus the SHA-256 of the frozen parameters it was trained on top of;
loading checks that digest, so weights trained on one backbone are never silently applied to
another (e.g. a random-init backbone after the pretrained file went missing).

Format (`torch.save`, read with `weights_only=True`): {"model": {name: tensor}, "frozen":
[names], "frozen_sha256": hex, ...extra}. Files holding a full state dict (no "frozen" key) load
strictly, as before.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fsar_bench.errors import FsarError


def frozen_names(module: nn.Module) -> list[str]:
    return sorted(name for name, p in module.named_parameters() if not p.requires_grad)


def frozen_digest(module: nn.Module, names: list[str] | None = None) -> str:
    """SHA-256 over the frozen parameters' names, dtypes, shapes and bytes."""
    params = dict(module.named_parameters())
    h = hashlib.sha256()
    for name in names if names is not None else frozen_names(module):
        t = params[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class Checkpointer:
    """Makes and applies checkpoints of one module; the frozen digest is computed once."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self._frozen: tuple[list[str], str] | None = None

    def _frozen_info(self) -> tuple[list[str], str]:
        names = frozen_names(self.module)
        if self._frozen is None or self._frozen[0] != names:
            self._frozen = (names, frozen_digest(self.module, names))
        return self._frozen

    def weights(self) -> dict[str, Any]:
        """The trainable parameters and buffers (copies), with the frozen digest."""
        names, digest = self._frozen_info()
        skip = set(names)
        model = {k: v.detach().clone() for k, v in self.module.state_dict().items() if k not in skip}
        return {"model": model, "frozen": names, "frozen_sha256": digest}

    def load(self, saved: dict[str, Any], path: str | Path = "checkpoint") -> None:
        """Apply a checkpoint made by `weights` (or a full state dict under "model")."""
        load_weights(self.module, saved, path, self._frozen_info())


def load_weights(module: nn.Module, saved: dict[str, Any], path: str | Path = "checkpoint",
                 frozen: tuple[list[str], str] | None = None) -> None:
    """Load `saved` into `module`: a trainable-only checkpoint after checking the frozen digest,
    anything else strictly."""
    state = saved.get("model", saved) if isinstance(saved.get("model"), dict) else saved
    if "frozen_sha256" not in saved:
        module.load_state_dict(state)
        return
    if frozen is None:
        names = frozen_names(module)
        frozen = (names, frozen_digest(module, names))
    names, digest = frozen
    if sorted(saved["frozen"]) != names or saved["frozen_sha256"] != digest:
        raise FsarError(f"{path} was trained on other frozen weights than this model's "
                        f"(frozen digest {saved['frozen_sha256'][:12]} vs {digest[:12]})",
                        "build the method with the same preset and pretrained weights as the run that wrote it")
    missing, unexpected = module.load_state_dict(state, strict=False)
    left = sorted(set(missing) - set(names))
    if left or unexpected:
        raise FsarError(f"{path} does not fit this model ({len(left)} missing keys e.g. {left[:2]}, "
                        f"{len(unexpected)} unexpected e.g. {list(unexpected)[:2]})",
                        "load it into the method, preset and overrides of the run that wrote it")


def _read_dict(path: Path, what: str, unreadable_fix: str) -> dict:
    """A weights file as a dict (`weights_only=True`), or a one-line error naming the file and `what` to pass."""
    if not path.is_file():
        raise FsarError(f"weights file {path} does not exist", f"pass {what}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (a damaged or foreign file)
        raise FsarError(f"weights file {path} cannot be read with weights_only=True ({type(exc).__name__})",
                        unreadable_fix) from None
    if not isinstance(saved, dict):
        raise FsarError(f"weights file {path} holds no state dict", f"pass {what}")
    return saved


def load_file(module: nn.Module, path: str | Path) -> None:
    """Load a checkpoint file (`final.pt` of a run, or any state-dict file) into `module`."""
    path = Path(path).expanduser()
    saved = _read_dict(path, "the final.pt of a trained run",
                       "pass the final.pt of a trained run, or a state dict saved with torch.save")
    if "frozen_sha256" not in saved:
        from fsar_bench.weights import read_state_dict

        saved = read_state_dict(path)  # unwraps {"state_dict"|"model"|"module": ...}
    try:
        load_weights(module, saved, path)
    except RuntimeError as exc:
        raise FsarError(f"weights file {path} does not fit this model ({str(exc).splitlines()[0]})",
                        "load it into the method, preset and overrides of the run that wrote it") from None


# -- authors' released checkpoints (docs/evaluation.md) -----------------------------------------

WRAPPERS = ("model_state_dict", "model_state", "state_dict", "model")  # where releases nest their weights


@dataclass(frozen=True)
class KeyMap:
    """How an authors' released checkpoint names a method's weights. A method declares its maps in
    `official_weights = {name: KeyMap}` (a class attribute), so the core names no method.

    `renames`: (release key prefix, our prefix) pairs, the longest matching prefix wins; `ignore`:
    release keys (fnmatch patterns) with no counterpart here (buffers we compute, unused layers);
    `keep`: our keys (patterns) the release does not hold (frozen pretrained parts, kept as built).
    Loading is strict otherwise: a missing or unexpected key is an error naming the first few."""

    source: str  # repository @ commit and the class whose state dict this is
    renames: tuple[tuple[str, str], ...]
    ignore: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()


def _unwrap(saved: dict[str, Any]) -> dict[str, Any]:
    """The state dict inside a release's checkpoint, 'module.' (DataParallel/DDP) segments removed."""
    for key in WRAPPERS:
        if isinstance(saved.get(key), dict):
            saved = saved[key]
            break
    return {".".join(p for p in k.split(".") if p != "module"): v for k, v in saved.items()
            if isinstance(v, torch.Tensor)}


def _first(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def map_official(saved: dict[str, Any], key_map: KeyMap, own: dict[str, torch.Tensor],
                 path: str | Path = "checkpoint") -> dict[str, torch.Tensor]:
    """The release's weights under our names and shapes; FsarError on any key or shape mismatch."""
    from fnmatch import fnmatchcase

    mapped: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for key, value in _unwrap(saved).items():
        if any(fnmatchcase(key, pat) for pat in key_map.ignore):
            continue
        head = max((p for p, _ in key_map.renames if key == p or key.startswith(p + ".")), key=len, default=None)
        if head is None:
            unexpected.append(key)
            continue
        mapped[dict(key_map.renames)[head] + key[len(head):]] = value
    unexpected += [k for k in mapped if k not in own]
    missing = [k for k in own if k not in mapped and not k.endswith("num_batches_tracked")
               and not any(fnmatchcase(k, pat) for pat in key_map.keep)]
    if missing or unexpected:
        part = (f"missing {_first(missing)}" if missing else "") + ("; " if missing and unexpected else "") + \
               (f"unexpected {_first(sorted(unexpected))}" if unexpected else "")
        raise FsarError(f"{path} does not fit the official key map ({key_map.source}): {part}",
                        "check the method, preset and --set values match the release's configuration "
                        "(docs/evaluation.md)")
    for key, value in list(mapped.items()):
        if key not in own:
            continue
        if value.shape != own[key].shape:
            if value.numel() != own[key].numel():
                raise FsarError(f"{path}: {key} has shape {tuple(value.shape)}, this model's is "
                                f"{tuple(own[key].shape)}", "build the method at the release's sizes "
                                "(preset/--set, docs/evaluation.md)")
            mapped[key] = value.reshape(own[key].shape)  # e.g. a scale stored as [1], ours a scalar
    return mapped


def load_official(module: nn.Module, path: str | Path, key_map: KeyMap) -> None:
    """Load an authors' released checkpoint into `module` through `key_map` (strict)."""
    path = Path(path).expanduser()
    saved = _read_dict(path, "the path of the released checkpoint",
                       "re-save it as a plain state dict: torch.save(ckpt['model_state_dict'], 'w.pt')")
    own = module.state_dict()
    module.load_state_dict(map_official(saved, key_map, own, path), strict=False)


def official_map(method_cls: type, name: str) -> KeyMap:
    """The key map `name` the method class declares (`official_weights`); FsarError naming the known ones."""
    maps: dict[str, KeyMap] = getattr(method_cls, "official_weights", {}) or {}
    if name not in maps:
        known = ", ".join(sorted(maps)) or "none"
        raise FsarError(f"method {getattr(method_cls, 'name', method_cls.__name__)!r} has no official key map "
                        f"{name!r} (known: {known})",
                        "drop --official to load a fsar-bench run or a plain state dict (docs/evaluation.md)")
    return maps[name]


def file_digest(path: str | Path) -> str:
    """SHA-256 of a weights file: the record names exactly which weights were evaluated."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
