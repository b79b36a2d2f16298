"""ST-Adapter baseline for few-shot action recognition (DMGAL Eq. 15 and Tables IV and VI: "ST-Adapter*",
the adapter-tuning baseline of DMGAL-Adapter): a frozen CLIP ViT-B/16 with one ST-Adapter per block,
per-frame class tokens, and the Bi-MHM metric.

Reference conventions (adapters.md section 1, `clip_vit_base_patch16_adapter12x384`): one adapter
per block before ln_2/MLP in all 12 blocks, width 384 (= D/2), frame feature = the class token
after ln_post (768-d, `proj` unused); only the adapters train. Bi-MHM in the adapter-tuning FSAR
convention (D2ST, adapters.md section 3): sum over frames, prototype (frame-wise mean over shots).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from fsar_bench.protocol import CLIP_MEAN, CLIP_STD, Matcher, Method
from fsar_bench.weights import open_clip_model
from fsar_methods.st_adapter.adapter import STAdapterModule
from fsar_methods.st_adapter.vit import FrozenViT, check_position, per_video

# Metric settings of the adapter-tuning FSAR code (D2ST): overridable through matcher kwargs.
METRIC_DEFAULTS: dict[str, dict[str, Any]] = {"bimhm": {"reduction": "sum", "kshot": "prototype"}}

# D2ST-Adapter ViT recipe (adapters.md section 4; training_recipes.md): Adam, L2 weight decay 1e-3,
# 16 episodes per update, 1 query per class, BASE_LR 1e-3 (SSv2/HMDB; 5e-4 on K100/UCF), no schedule here.
ADAPTER_TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "full": {"steps": 10_000, "lr": 1e-3, "weight_decay": 1e-3, "episodes_per_update": 16, "val_every": 500,
             "val_episodes": 1_000, "train_query": 1, "checkpoint_every": 500},
    "tiny": {"steps": 100, "lr": 1e-2, "episodes_per_update": 1, "val_every": 50, "val_episodes": 100,
             "train_query": 1},
}


class STAdapter(Method):
    """Frozen CLIP ViT + ST-Adapters (Eq. 15) -> per-frame features [B, T, D].

    Args:
        model, pretrained, weights: the open_clip model, its hub tag, or a local state-dict file
            (fsar_bench.weights.open_clip_model; OpenAI weights need the '-quickgelu' model name).
        frames, image_size: clip shape (image_size must be the model's input size).
        adapter_ratio: bottleneck width D' / D (0.5 = the reference's 384 on ViT-B).
        adapter_position: 'pre_attn', 'pre_mlp' (reference) or 'post_mlp' (see vit.py).
        adapter_layers: adapters in the top N blocks (None: all, as the reference's released configs).
        kernel: the depth-wise conv kernel (T, h, w).
        use_proj: frame features through CLIP's `proj` (512-d) instead of the 768-d ln_post output.
    """

    presets = {
        "full": {"model": "ViT-B-16-quickgelu", "pretrained": "openai", "frames": 8, "image_size": 224},
        "tiny": {"model": "fsar-tiny-vit", "pretrained": None, "frames": 8, "image_size": 32},
    }
    train_presets = ADAPTER_TRAIN_PRESETS
    default_matcher = "bimhm"
    mean = CLIP_MEAN
    std = CLIP_STD

    def __init__(self, *, model: str = "ViT-B-16-quickgelu", pretrained: str | None = None, weights: str | None = None,
                 frames: int = 8, image_size: int = 224, adapter_ratio: float = 0.5, adapter_position: str = "pre_mlp",
                 adapter_layers: int | None = None, kernel: Sequence[int] = (3, 1, 1), use_proj: bool = False) -> None:
        super().__init__(frames=frames, image_size=image_size)
        clip, self.weights_source = open_clip_model(model, weights=weights, pretrained=pretrained)
        self.vit = FrozenViT(clip.visual)
        self.position = check_position(adapter_position)
        depth, dim = self.vit.depth, self.vit.width
        n = depth if adapter_layers is None else max(0, min(depth, int(adapter_layers)))
        self.first_adapted = depth - n
        width = max(1, round(dim * adapter_ratio))
        self.adapters = nn.ModuleList(STAdapterModule(dim, width, self.vit.grid, kernel) for _ in range(n))
        self.use_proj = bool(use_proj)
        self.feature_dim = self.vit.proj_dim if self.use_proj else dim

    def build_matcher(self, name: str, **kwargs: Any) -> Matcher:
        return super().build_matcher(name, **{**METRIC_DEFAULTS.get(name, {}), **kwargs})

    def embed(self, clips: Tensor, texts: Sequence[str] | None = None) -> Tensor:
        """clips [B, T, 3, H, W] -> frame features [B, T, D]."""
        b, t = clips.shape[:2]
        x = self.vit.tokens(clips.flatten(0, 1))
        for i in range(self.vit.depth):
            k = i - self.first_adapted
            adapter = per_video(self.adapters[k], t) if k >= 0 else None
            x = self.vit.block(i, x, adapter, self.position)
        return self.vit.readout(x, self.use_proj).unflatten(0, (b, t))
