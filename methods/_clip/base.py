"""`ClipMethod`: what the CLIP-based methods share (MA-FSAR, CLIP-FSAR, zero-shot CLIP, AIM).

Each loads an open_clip model as a visual and a frozen text tower (`load_towers`), normalises
clips with CLIP's mean and std, and (when `uses_text`) embeds a support with its class text, so
that its features are {'frames': [B, T, D'], 'text': [B, D']} with zeros as a query's text. Their
heads apply the method's metric settings (OTAM's lambda, the k-shot rule) to whichever metric is
selected, and they train with Adam without weight decay on 1-D parameters (`optim`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from fsar_bench.protocol import CLIP_MEAN, CLIP_STD, Matcher, Method
from fsar_methods._clip.backbone import load_clip
from fsar_methods._clip.matching import metric_options
from fsar_methods._clip.optim import adam_l2_no_1d
from fsar_methods._clip.text import ClassTextEncoder, prompt_templates

# The `full` preset of every CLIP method: OpenAI weights, 8 frames at 224 px (the papers' setting).
FULL_PRESET = {"pretrained": "openai", "frames": 8, "image_size": 224}
# The `tiny` preset: a random tiny ViT (fsar_bench.weights) for CPU runs and tests.
TINY_PRESET = {"clip_model": "fsar-tiny-vit", "pretrained": None, "frames": 8, "image_size": 32}


class ClipMethod(Method):
    """A method on an open_clip model; subclasses set `self.visual` from `load_towers`."""

    uses_text = True
    mean, std = CLIP_MEAN, CLIP_STD

    def load_towers(self, clip_model: str, weights: str | None, pretrained: str | None,
                    prompt: str | None = None) -> nn.Module:
        """Load the CLIP model; set `weights_source` and (with a `prompt` set) the frozen class-text
        encoder `self.text` and `feature_dim` (its width D'). Returns the visual tower."""
        visual, clip_text, self.weights_source = load_clip(clip_model, weights, pretrained)
        if prompt is not None:
            self.text = ClassTextEncoder(clip_text, clip_model, prompt_templates(prompt))
            self.feature_dim = self.text.dim
        return visual

    def text_features(self, texts: Sequence[str] | None) -> Tensor | None:
        """F_T [B, D'] of the given class names (None without texts: a query)."""
        return self.text(list(texts)) if texts is not None else None

    def frames_and_text(self, frames: Tensor, text: Tensor | None) -> dict[str, Tensor]:
        """The features of a video: its frames [B, T, D'] and its class text [B, D'] (zeros for a query)."""
        if text is None:
            text = frames.new_zeros(frames.shape[0], self.feature_dim)
        return {"frames": frames, "text": text.to(frames.dtype)}

    def embed(self, clips: Tensor, texts: Sequence[str] | None = None) -> dict[str, Tensor]:
        """The visual tower frame by frame, plus the class text of supports."""
        return self.frames_and_text(self.visual(clips), self.text_features(texts))

    # -- head and training -----------------------------------------------------------------------
    metric_defaults: dict[str, object] = {}  # e.g. {'lam': 0.5, 'kshot': 'prototype'}, set in __init__

    def build_matcher(self, name: str, **kwargs: object) -> Matcher:
        """The metric with the method's `metric_defaults` that it accepts (explicit kwargs win)."""
        return super().build_matcher(name, **metric_options(self.matcher_cls, self.metric_defaults, kwargs))

    def configure_optimizer(self, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
        return adam_l2_no_1d(self, lr, weight_decay)
