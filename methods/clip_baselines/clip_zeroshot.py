"""Zero-shot CLIP ("CLIP-Freeze" of MA-FSAR Table 11, Sec. 4.3.9): the frozen CLIP model, no training.

Each query video is the mean of its per-frame CLIP image features; its logits are CLIP's
logit_scale * cos(video, F_T^m) against the text features of the episode's classes (the 16-template
mixture of MA-FSAR Table 10 by default, as for MA-FSAR). Support videos are never looked at, so the
method runs with `--shot 0`.

The class texts reach `score_batch` either through the optional keyword `class_names` (the
evaluator passes the episode's class action names to methods whose `score_batch` accepts it;
required at shot 0, where the episode has no supports), or, when it is absent, through the
supports, which are embedded with the text of their class (`uses_text`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from fsar_bench.errors import FsarError
from fsar_bench.protocol import Features
from fsar_methods._clip.backbone import FrameEncoder, freeze
from fsar_methods._clip.base import FULL_PRESET, TINY_PRESET, ClipMethod
from fsar_methods._clip.text import class_text, video_text_logits

_NO_TRAINING = {"steps": 0}


class CLIPZeroShot(ClipMethod):
    """Hyperparameters: clip_model, pretrained, weights, frames, image_size, prompt ('mixture' | 'cls' |
    'photo_action' | 'photo'). The matcher is not used."""

    presets = {
        "full": {"clip_model": "ViT-B-32-quickgelu", **FULL_PRESET},
        "vit_b16": {"clip_model": "ViT-B-16-quickgelu", **FULL_PRESET},
        "rn50": {"clip_model": "RN50-quickgelu", **FULL_PRESET},
        "tiny": dict(TINY_PRESET),
    }
    train_presets = {name: _NO_TRAINING for name in presets}
    default_matcher = "proto"
    zero_shot = True  # text-only scoring from the class names (score_batch's class_names)

    def __init__(self, *, clip_model: str = "ViT-B-32-quickgelu", pretrained: str | None = None,
                 weights: str | None = None, frames: int = 8, image_size: int = 224, prompt: str = "mixture") -> None:
        super().__init__(frames=frames, image_size=image_size)
        self.visual = FrameEncoder(freeze(self.load_towers(clip_model, weights, pretrained, prompt)))

    def class_texts(self, class_names: Sequence[Sequence[str]]) -> Tensor:
        """[E, way, D'] text features of the episodes' class names."""
        e, way = len(class_names), len(class_names[0])
        return self.text([n for names in class_names for n in names]).view(e, way, -1)

    def score_batch(self, query: Features, support: Features, support_labels: Tensor, way: int,
                    class_names: Sequence[Sequence[str]] | None = None, **kwargs: Any) -> Tensor:
        if class_names is not None:
            text = self.class_texts(class_names).to(query["frames"])
        elif support_labels.shape[1] > 0:
            text = class_text(support["text"], support_labels, way)
        else:
            raise FsarError("zero-shot scoring of an episode without supports needs its class names",
                            "call score_batch(..., class_names=[[name, ...], ...])")
        return video_text_logits(query["frames"].mean(dim=2), text, self.text.logit_scale)
