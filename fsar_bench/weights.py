"""Loading pretrained weights, and saying where a model's weights came from.

A method's `weights_source` is 'random-init', 'file:<sha256 prefix>' (a local file) or
'hub:<tag>' (downloaded by timm / open_clip on a machine with internet): 'hub:timm/<arch>.<tag>'
or 'hub:open_clip/<model>/<tag>'. Runs from random weights are labelled as such and never ranked
with pretrained runs.

Weights are named by explicit tag: timm's default for 'resnet50' is 'resnet50.a1_in1k' (timm's
2021 recipe), not the torchvision ImageNet weights ('resnet50.tv_in1k', IMAGENET1K_V1) that the
ResNet-50 FSAR papers and their code use. A method card's `weights` maps each preset to the
weights source of its paper; `weights_status` compares a run's source with it, so an overridden
tag (`--set weights_tag=...`, `--set pretrained=...` for open_clip) is never shown as the paper's.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from pathlib import Path

import torch
from torch import nn

from fsar_bench.errors import FsarError


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors or a torch file (weights_only: no code is unpickled)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FsarError(f"weights file {path} does not exist", "pass an existing file, or drop the weights option")
    if not path.is_file():
        raise FsarError(f"weights file {path} is not a file", "pass the path of a state-dict file, not a folder")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # noqa: BLE001  (SafetensorError, OSError: a damaged or partial file)
            raise FsarError(f"weights file {path} cannot be read as safetensors ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})",
                            "re-download it, or pass a state dict saved with torch.save") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise FsarError(f"weights file {path} cannot be read ({type(exc).__name__})",
                        "pass a state dict saved with torch.save or a .safetensors file") from None
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise FsarError(f"weights file {path} holds no state dict", "save model.state_dict() to it")
    return obj


def load_into(module: nn.Module, path: str | Path, what: str) -> str:
    """Load a local weights file into `module` strictly; returns the 'file:<digest>' source label."""
    state = read_state_dict(path)
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # same keys, other shapes: another size of the architecture
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = next((line for line in lines if "size mismatch" in line), lines[-1] if lines else "")
        raise FsarError(f"weights file {path} does not fit {what} ({detail})",
                        f"pass weights saved from a {what}") from None
    if missing or unexpected:
        raise FsarError(f"weights file {path} does not fit {what} ({len(missing)} missing keys e.g. "
                        f"{missing[:2]}, {len(unexpected)} unexpected e.g. {unexpected[:2]})",
                        f"pass weights saved from a {what}")
    return f"file:{file_digest(Path(path).expanduser())[:16]}"


def timm_pretrained_name(name: str, tag: str | None = None) -> str:
    """'<arch>.<tag>': the weights `timm.create_model(..., pretrained=True)` loads, by explicit tag.

    `tag` (or a tag inside `name`, 'resnet50.tv_in1k') is checked against timm's registry (offline);
    without one, timm's default tag is made explicit ('resnet50' -> 'resnet50.a1_in1k')."""
    import timm
    from timm.models import get_pretrained_cfg

    arch, _, in_name = name.partition(".")
    if tag and in_name and tag != in_name:
        raise FsarError(f"timm model {name!r} names the weights tag {in_name!r} but weights_tag is {tag!r}",
                        "give the tag once (backbone=ARCH weights_tag=TAG)")
    tag = tag or in_name
    if not tag:
        cfg = get_pretrained_cfg(arch)
        if cfg is None or not cfg.tag:
            raise FsarError(f"timm has no pretrained weights for {arch!r}",
                            "pass weights=PATH to a local file, or pretrained=false (labelled random-init)")
        tag = cfg.tag
    known = [t.partition(".")[2] for t in timm.list_pretrained(f"{arch}.*")]
    if tag not in known:
        from fsar_bench.errors import unknown

        raise unknown("weights tag", tag, known, where=f"of timm model {arch!r}")
    return f"{arch}.{tag}"


def timm_backbone(name: str, weights: str | None = None, pretrained: bool = False, weights_tag: str | None = None,
                  **kwargs) -> tuple[nn.Module, str]:
    """A timm model without classifier, and its weights source.

    weights: a local state-dict file (wins; 'file:<digest>'); pretrained: fetch the hub weights named
    by `weights_tag` (or the tag in `name`; timm's default tag, made explicit, when neither is given)."""
    import timm

    arch = name.partition(".")[0]
    try:
        model = timm.create_model(arch, pretrained=False, num_classes=0, **kwargs)
    except RuntimeError as exc:
        raise FsarError(f"timm has no model {name!r} ({exc})", "pick a name from timm.list_models()") from None
    if weights:
        try:
            return model, load_into(model, weights, f"timm {name}")
        except RuntimeError as exc:  # size mismatch
            raise FsarError(f"weights file {weights} does not fit timm {name} ({str(exc).splitlines()[1].strip()})",
                            f"pass weights saved from a timm {name}") from None
    if pretrained:
        full = timm_pretrained_name(name, weights_tag)
        try:
            model = timm.create_model(full, pretrained=True, num_classes=0, **kwargs)
        except Exception as exc:  # noqa: BLE001  (offline, hub errors)
            raise FsarError(f"could not fetch pretrained timm weights {full} ({type(exc).__name__})",
                            "pass weights=PATH to a local file (e.g. --set weights=...), or pretrained=false "
                            "(the run is then labelled random-init)") from None
        return model, f"hub:timm/{full}"
    return model, "random-init"


# Tiny CLIP architectures for CPU tests and toy runs (random weights only: nothing is published
# for them). They use the same open_clip classes as ViT-B/16 and RN50, just smaller.
TINY_CLIP_CONFIGS = {
    "fsar-tiny-vit": {"embed_dim": 64, "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8,
                                                      "head_width": 32},
                      "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}},
    "fsar-tiny-rn": {"embed_dim": 64, "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 16},
                     "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}},
}


def register_tiny_clip() -> None:
    from open_clip import factory

    for name, cfg in TINY_CLIP_CONFIGS.items():
        if name not in factory._MODEL_CONFIGS:
            factory._MODEL_CONFIGS[name] = cfg


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def open_clip_model(name: str, weights: str | None = None, pretrained: str | None = None) -> tuple[nn.Module, str]:
    """An open_clip CLIP model (visual + text) and its weights source.

    `weights`: a local checkpoint file (state dict of the same architecture: for OpenAI weights use
    the '-quickgelu' model names); `pretrained`: an open_clip tag such as 'openai' or
    'laion2b_s34b_b88k', fetched from its hub on a machine with internet.
    """
    import open_clip

    register_tiny_clip()
    if name not in open_clip.list_models() and name not in TINY_CLIP_CONFIGS:
        from fsar_bench.errors import unknown

        raise unknown("open_clip model", name, [*open_clip.list_models(), *TINY_CLIP_CONFIGS])
    with _quiet_root_logger():  # open_clip warns "initialized randomly" on the root logger
        model = open_clip.create_model(name, pretrained=None)
    if weights:
        try:
            return model, load_into(model, weights, f"open_clip {name}")
        except RuntimeError as exc:
            raise FsarError(f"weights file {weights} does not fit open_clip {name} "
                            f"({str(exc).splitlines()[1].strip()})", f"pass weights saved from an open_clip {name}") from None
    if pretrained:
        tags = open_clip.list_pretrained_tags_by_model(name)
        if pretrained not in tags:
            from fsar_bench.errors import unknown

            raise unknown("weights tag", str(pretrained), tags or ["(none: pass weights=PATH)"],
                          where=f"of open_clip model {name!r}")
        try:
            model = open_clip.create_model(name, pretrained=pretrained)
        except Exception as exc:  # noqa: BLE001
            raise FsarError(f"could not fetch open_clip weights {name}/{pretrained} ({type(exc).__name__})",
                            "pass weights=PATH to a local checkpoint, or pretrained=null (labelled random-init)") from None
        return model, open_clip_source(name, pretrained)
    return model, "random-init"


def clip_tokenizer(name: str):
    import open_clip

    register_tiny_clip()
    return open_clip.get_tokenizer("ViT-B-16" if name in TINY_CLIP_CONFIGS else name)


def open_clip_source(name: str, tag: str) -> str:
    """The weights source of open_clip `name` with pretrained tag `tag` (as `open_clip_model` reports it)."""
    return f"hub:open_clip/{name}/{tag}"


def weights_status(paper: str | None, source: str) -> str:
    """How a run's weights relate to its paper's (`paper`: the card's `weights` entry of the preset).

    'paper' only when the source is exactly the paper's; the leaderboard presents nothing else as
    the paper's configuration."""
    if source == "random-init":
        return "random-init"
    if not paper:
        return "no paper weights declared"
    if source == paper:
        return "paper"
    if source.startswith("file:"):
        return f"local file, not verified as the paper's weights ({paper})"
    return f"not the paper's weights (paper: {paper})"


def paper_weights(cls: type, preset: str) -> str | None:
    """The weights source the method's paper used for `preset` (its card's `weights`), if declared."""
    return dict(getattr(cls.card(), "weights", None) or {}).get(preset)
