"""ProtoNet (Snell et al., NeurIPS 2017) for video: a 2D backbone per frame, a matcher on top.

The classic few-shot baseline. Each frame goes through a timm backbone (ImageNet ResNet-50 in
the full preset); the per-frame features [B, T, D] are the video's embedding. The default
prototype matcher averages them over frames and shots and compares with cosine similarity;
`--matcher otam` (or trx, bimhm) turns it into the corresponding frame-level baseline on the
same backbone.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from fsar_bench.protocol import Method
from fsar_bench.weights import timm_backbone
from fsar_methods.protonet.official import FSAR_LIB_RELEASE


class ProtoNet(Method):
    official_weights = {"fsar-lib": FSAR_LIB_RELEASE}  # TRX/OTAM heads of tobyperrett's code (official.py)
    presets = {
        # torchvision's ImageNet weights (IMAGENET1K_V1), as OTAM / TRX / HyRSM, not timm's default a1_in1k
        "full": {"backbone": "resnet50", "pretrained": True, "weights_tag": "tv_in1k", "frames": 8, "image_size": 224},
        "tiny": {"backbone": "test_resnet", "pretrained": False, "frames": 8, "image_size": 32},
    }
    train_presets = {
        "full": {"steps": 10_000, "lr": 1e-4, "episodes_per_update": 16, "val_every": 1_000, "train_query": 5},
        "tiny": {"steps": 150, "lr": 1e-3, "episodes_per_update": 1, "val_every": 50, "val_episodes": 100,
                 "train_query": 1},
    }
    default_matcher = "proto"

    def __init__(self, *, backbone: str = "resnet50", pretrained: bool = False, weights: str | None = None,
                 weights_tag: str | None = None, frames: int = 8, image_size: int = 224) -> None:
        super().__init__(frames=frames, image_size=image_size)
        self.encoder, self.weights_source = timm_backbone(backbone, weights=weights, pretrained=pretrained,
                                                          weights_tag=weights_tag)
        self.feature_dim = self.encoder.num_features

    def embed(self, clips: Tensor, texts: Sequence[str] | None = None) -> Tensor:
        b, t = clips.shape[:2]
        return self.encoder(clips.flatten(0, 1)).view(b, t, -1)
