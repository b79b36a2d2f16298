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
from fsar_bench.protocol import CLIP_MEAN, CLIP_STD, Features, Method
from fsar_methods.ma_fsar import losses
from fsar_methods.ma_fsar.backbone import FrameEncoder, freeze, load_clip
from fsar_methods.ma_fsar.text import ClassTextEncoder, prompt_templates

_FULL = {"pretrained": "openai", "frames": 8, "image_size": 224}
_NO_TRAINING = {"steps": 0}


class CLIPZeroShot(Method):
    """Hyperparameters: clip_model, pretrained, weights, frames, image_size, prompt ('mixture' | 'cls' |
    'photo_action' | 'photo'). The matcher is not used."""

    presets = {
        "full": {"clip_model": "ViT-B-32-quickgelu", **_FULL},
        "vit_b16": {"clip_model": "ViT-B-16-quickgelu", **_FULL},
        "rn50": {"clip_model": "RN50-quickgelu", **_FULL},
        "tiny": {"clip_model": "fsar-tiny-vit", "pretrained": None, "frames": 8, "image_size": 32},
    }
    train_presets = {name: _NO_TRAINING for name in presets}
    default_matcher = "proto"
    uses_text = True
    zero_shot = True  # text-only scoring from the class names (score_batch's class_names)
    mean, std = CLIP_MEAN, CLIP_STD

    def __init__(self, *, clip_model: str = "ViT-B-32-quickgelu", pretrained: str | None = None,
                 weights: str | None = None, frames: int = 8, image_size: int = 224, prompt: str = "mixture") -> None:
        super().__init__(frames=frames, image_size=image_size)
        visual, clip_text, self.weights_source = load_clip(clip_model, weights, pretrained)
        self.visual = FrameEncoder(freeze(visual))
        self.text = ClassTextEncoder(clip_text, clip_model, prompt_templates(prompt))
        self.feature_dim = self.text.dim

    def embed(self, clips: Tensor, texts: Sequence[str] | None = None) -> Features:
        frames = self.visual(clips)
        text = self.text(list(texts)) if texts is not None else frames.new_zeros(frames.shape[0], self.feature_dim)
        return {"frames": frames, "text": text.to(frames.dtype)}

    def class_texts(self, class_names: Sequence[Sequence[str]]) -> Tensor:
        """[E, way, D'] text features of the episodes' class names."""
        e, way = len(class_names), len(class_names[0])
        return self.text([n for names in class_names for n in names]).view(e, way, -1)

    def score_batch(self, query: Features, support: Features, support_labels: Tensor, way: int,
                    class_names: Sequence[Sequence[str]] | None = None, **kwargs: Any) -> Tensor:
        if class_names is not None:
            text = self.class_texts(class_names).to(query["frames"])
        elif support_labels.shape[1] > 0:
            text = losses.class_text(support["text"], support_labels, way)
        else:
            raise FsarError("zero-shot scoring of an episode without supports needs its class names",
                            "call score_batch(..., class_names=[[name, ...], ...])")
        return losses.video_text_logits(query["frames"].mean(dim=2), text, self.text.logit_scale)
