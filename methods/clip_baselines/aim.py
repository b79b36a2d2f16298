"""AIM (Yang et al., "AIM: Adapting Image Models for Efficient Video Action Recognition", ICLR 2023)
as the few-shot baseline "AIM (OTAM)" of MA-FSAR Tables 1-2: AIM's classification head is replaced
by the OTAM matching head (MA-FSAR Sec. 4.2). No text is used.

Per frozen CLIP ViT block (notes/adapters.md Sec. 2, AIM `vit_clip.py`), tokens [B*T, N+1, D]:
  1. temporal: every token position attends over the T frames with the block's frozen ln_1 and
     attention;  x <- x + T_Adapter(Attn(ln_1 x_t))          (T_Adapter without skip;
     with num_tadapter = 2 an extra T_Adapter_in, with skip, acts on ln_1 x_t first)
  2. spatial:  x <- x + S_Adapter(Attn(ln_1 x))             (S_Adapter with skip)
  3. joint:    x <- x + MLP(ln_2 x) + s * MLP_Adapter(ln_2 x)  (MLP_Adapter without skip, s = 0.5)
A zero-initialised temporal embedding [T, D] is added to all tokens before ln_pre. Trainable:
the adapters, the temporal embedding and ln_post. The frame feature is ln_post of the class token
(width D, no CLIP projection), as in AIM.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from fsar_methods._clip.adapter import Adapter
from fsar_methods._clip.backbone import check_adaptable_vit, freeze, vit_output, vit_tokens, vit_width
from fsar_methods._clip.base import FULL_PRESET, TINY_PRESET, ClipMethod
_TRAIN = {"steps": 10_000, "lr": 1e-3, "weight_decay": 1e-3, "episodes_per_update": 16, "val_every": 1_000,
          "val_episodes": 1_000, "train_query": 5, "checkpoint_every": 500}


class AIMLayer(nn.Module):
    """The adapters of one frozen block (the block is passed to `forward`)."""

    def __init__(self, dim: int, ratio: float = 0.25, scale: float = 0.5, num_tadapter: int = 1) -> None:
        super().__init__()
        self.t_adapter_in = Adapter(dim, ratio, skip=True) if num_tadapter == 2 else None
        self.t_adapter = Adapter(dim, ratio, skip=False)
        self.s_adapter = Adapter(dim, ratio, skip=True)
        self.mlp_adapter = Adapter(dim, ratio, skip=False)
        self.scale = float(scale)

    def forward(self, block: nn.Module, x: Tensor, frames: int) -> Tensor:
        n, length, dim = x.shape
        b = n // frames
        xt = x.view(b, frames, length, dim).transpose(1, 2).reshape(b * length, frames, dim)
        h = block.ln_1(xt)
        if self.t_adapter_in is not None:
            h = self.t_adapter_in(h)
        xt = self.t_adapter(block.attention(h))
        x = x + xt.view(b, length, frames, dim).transpose(1, 2).reshape(n, length, dim)
        x = x + self.s_adapter(block.attention(block.ln_1(x)))
        h = block.ln_2(x)
        return x + block.mlp(h) + self.scale * self.mlp_adapter(h)


class AIMViT(nn.Module):
    """clips [B, T, 3, H, W] -> per-frame features [B, T, D]."""

    def __init__(self, vit: nn.Module, frames: int, ratio: float = 0.25, scale: float = 0.5,
                 num_tadapter: int = 1) -> None:
        super().__init__()
        check_adaptable_vit(vit, "AIM")
        if num_tadapter not in (1, 2):
            raise ValueError(f"num_tadapter must be 1 or 2, not {num_tadapter}")
        self.vit = freeze(vit)
        width = vit_width(vit)
        self.temporal_embedding = nn.Parameter(torch.zeros(1, frames, width))
        for p in self.vit.ln_post.parameters():
            p.requires_grad_(True)
        self.layers = nn.ModuleList(AIMLayer(width, ratio, scale, num_tadapter) for _ in vit.transformer.resblocks)
        self.output_dim = width

    def forward(self, clips: Tensor) -> Tensor:
        b, t = clips.shape[:2]
        if t != self.temporal_embedding.shape[1]:
            raise ValueError(f"AIM was built for {self.temporal_embedding.shape[1]} frames, got {t}")
        temporal = self.temporal_embedding.expand(b, -1, -1).reshape(b * t, 1, -1)
        x = vit_tokens(self.vit, clips.flatten(0, 1), add=temporal)
        for block, layer in zip(self.vit.transformer.resblocks, self.layers):
            x = layer(block, x, t)
        return vit_output(self.vit, x, project=False).view(b, t, -1)


class AIM(ClipMethod):
    """AIM adapters in a frozen CLIP ViT, OTAM head ("AIM (OTAM)").

    Hyperparameters: clip_model, pretrained, weights, frames, image_size; adapter_ratio (0.25),
    adapter_scale (s = 0.5; AIM's K400 config; its SSv2 config uses s = 1 and num_tadapter = 2),
    num_tadapter (1 or 2); otam_lambda and kshot for the metric (the same head as MA-FSAR's).
    """

    presets = {
        "full": {"clip_model": "ViT-B-32-quickgelu", **FULL_PRESET},
        "vit_b16": {"clip_model": "ViT-B-16-quickgelu", **FULL_PRESET},
        "tiny": dict(TINY_PRESET),
    }
    train_presets = {
        "full": _TRAIN, "vit_b16": _TRAIN,
        "tiny": {"steps": 200, "lr": 5e-3, "episodes_per_update": 1, "val_every": 100, "val_episodes": 100,
                 "train_query": 2, "checkpoint_every": 100},
    }
    default_matcher = "otam"
    uses_text = False

    def __init__(self, *, clip_model: str = "ViT-B-32-quickgelu", pretrained: str | None = None,
                 weights: str | None = None, frames: int = 8, image_size: int = 224, adapter_ratio: float = 0.25,
                 adapter_scale: float = 0.5, num_tadapter: int = 1, otam_lambda: float = 0.5,
                 kshot: str = "prototype") -> None:
        super().__init__(frames=frames, image_size=image_size)
        visual = self.load_towers(clip_model, weights, pretrained)  # no prompt: the text tower is unused
        self.visual = AIMViT(visual, frames, adapter_ratio, adapter_scale, num_tadapter)
        self.feature_dim = self.visual.output_dim
        self.metric_defaults = {"lam": float(otam_lambda), "kshot": kshot}

    def embed(self, clips: Tensor, texts: Sequence[str] | None = None) -> Tensor:
        return self.visual(clips)
