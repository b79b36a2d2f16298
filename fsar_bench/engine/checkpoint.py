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


def load_file(module: nn.Module, path: str | Path) -> None:
    """Load a checkpoint file (`final.pt` of a run, or any state-dict file) into `module`."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FsarError(f"weights file {path} does not exist", "pass the final.pt of a trained run")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (a damaged or foreign file)
        raise FsarError(f"weights file {path} cannot be read ({type(exc).__name__})",
                        "pass the final.pt of a trained run, or a state dict saved with torch.save") from None
    if not isinstance(saved, dict):
        raise FsarError(f"weights file {path} holds no state dict", "pass the final.pt of a trained run")
    if "frozen_sha256" not in saved:
        from fsar_bench.weights import read_state_dict

        saved = read_state_dict(path)  # unwraps {"state_dict"|"model"|"module": ...}
    try:
        load_weights(module, saved, path)
    except RuntimeError as exc:
        raise FsarError(f"weights file {path} does not fit this model ({str(exc).splitlines()[0]})",
                        "load it into the method, preset and overrides of the run that wrote it") from None
