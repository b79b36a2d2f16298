"""I2ST: Joint Image-Instance Spatial-Temporal Attention for Few-shot Action Recognition
(Qian, Zhang, Huang, Wang, Ying). Paper: /work/shared/papers/i2st.txt; docs: docs/methods/i2st.md.

Pipeline (Fig. 2), per video of T frames:
  ResNet-50 (no pooling, 7x7 maps) -> f^Img [T, C, H, W]
  Instance Perception Encoder      -> f^Ins [T, C, H, W]                       (Sec. 3.3, Eq. 1; ipm.py)
  S- and T-branch joint attention  -> f^S, f^T; f^ST = AvgPool f^S + AvgPool f^T (Sec. 3.4, Eq. 4-5; sam.py)
  global fusion with a token       -> local prototypes f~^1..T, global f~^token  (Eq. 5; fusion.py)
`embed` returns {"frames": f~^1..T [B, T, C], "global": f~^token [B, C]}; the registered matcher
`global_local` scores them with Eq. 6 (Bi-MHM over frames + cosine of the global tokens).
Training (Eq. 7): CE + lambda * L2 mask loss (Eq. 2-3, through the Instance Perception Decoder,
which `embed` never uses) + an auxiliary supervised contrastive loss (losses.py explains the choice).

Masks: the class requests them from the data pipeline (`extra_inputs = {'masks'}`). With
`mask_loss=False`, with the IPM off, or when the training dataset has no masks configured, the
instance requests none, trains without the mask loss and says so: `hparams['mask_loss']` is
False, a warning is emitted and the per-step metric `train_mask_loss_on` is 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fsar_bench.matchers.global_local import GlobalLocal
from fsar_bench.protocol import EpisodeBatch, Features, Method
from fsar_bench.weights import timm_backbone
from fsar_methods.i2st.fusion import GlobalFusion
from fsar_methods.i2st.ipm import InstanceDecoder, InstanceEncoder
from fsar_methods.i2st.losses import mask_loss as l2_mask_loss
from fsar_methods.i2st.losses import supervised_contrastive
from fsar_methods.i2st.sam import SpatialTemporalAttention

MASKS = frozenset({"masks"})


class I2ST(Method):
    """I2ST with the switches of the paper's ablations.

    Args (beyond backbone/pretrained/weights/weights_tag/frames/image_size, as in ProtoNet):
        output_stride: backbone output stride (32 = ResNet-50 as in the paper: 7x7 maps at 224 px;
            the tiny preset uses 16 so that 32-px frames keep 2x2 maps).
        heads, ffn_dim, dropout: the attention layers (heads of every MHA; FFN hidden width).
        instance_perception, t_branch, s_branch: Table 3's switches (IPM, temporal and spatial branch).
        global_fusion: the token/position-embedding fusion of Eq. 5 (off: local = f^ST, global =
            its temporal mean; with everything off and `--matcher bimhm` this is Table 3's baseline).
        fusion: 'self' (the paper's model) or 'cross' (Table 4's cross-attention variant).
        ipe_hidden: width of the encoder's bottleneck. decoder_channels: widths of the decoder stages
            (each after the first doubles the resolution).
        mask_loss, mask_weight: the L2 mask loss and lambda of Eq. 7.
        contrastive_weight, contrastive_temperature: the auxiliary supervised contrastive loss.
    """

    no_decay_on_norms = True  # no weight decay on normalisation layers, as the reference training code
    presets = {
        # the ImageNet ResNet-50 of the methods I2ST compares with (OTAM, HyRSM: torchvision IMAGENET1K_V1)
        "full": {"backbone": "resnet50", "pretrained": True, "weights_tag": "tv_in1k", "frames": 8, "image_size": 224,
                 "output_stride": 32, "heads": 8, "ffn_dim": 2048, "ipe_hidden": 512,
                 "decoder_channels": [256, 128, 64, 32, 16, 8], "mask_loss": True},
        "tiny": {"backbone": "test_resnet", "pretrained": False, "frames": 8, "image_size": 32, "output_stride": 16,
                 "heads": 2, "ffn_dim": 96, "ipe_hidden": 32, "decoder_channels": [32, 16, 16, 8, 8],
                 "mask_loss": True},
    }
    # HyRSM/MoLo family (shared/notes/training_recipes.md): Adam, L2 weight decay 1e-3 (not on norm
    # layers), 16 episodes per update, LR 1e-4 (SSv2 base LR; the paper states none; no schedule here).
    train_presets = {
        "full": {"steps": 20_000, "lr": 1e-4, "weight_decay": 1e-3, "episodes_per_update": 16, "val_every": 1_000,
                 "val_episodes": 1_000, "train_query": 6, "checkpoint_every": 500},
        "tiny": {"steps": 100, "lr": 1e-3, "episodes_per_update": 1, "val_every": 50, "val_episodes": 100,
                 "train_query": 1},
    }
    default_matcher = "global_local"
    extra_inputs = MASKS

    def __init__(self, *, backbone: str = "resnet50", pretrained: bool = False, weights: str | None = None,
                 weights_tag: str | None = None, frames: int = 8, image_size: int = 224, output_stride: int = 32,
                 heads: int = 8, ffn_dim: int = 2048, dropout: float = 0.0, instance_perception: bool = True,
                 t_branch: bool = True, s_branch: bool = True, global_fusion: bool = True, fusion: str = "self",
                 ipe_hidden: int = 512, decoder_channels: Sequence[int] = (256, 128, 64, 32, 16, 8),
                 mask_loss: bool = True, mask_weight: float = 1.0, contrastive_weight: float = 0.05,
                 contrastive_temperature: float = 0.1) -> None:
        super().__init__(frames=frames, image_size=image_size)
        extra = {"output_stride": int(output_stride)} if int(output_stride) != 32 else {}
        self.encoder, self.weights_source = timm_backbone(backbone, weights=weights, pretrained=pretrained,
                                                          weights_tag=weights_tag, **extra)
        dim = self.encoder.num_features
        self.feature_dim = dim
        self.ipe = InstanceEncoder(dim, ipe_hidden) if instance_perception else None
        self.ipd = InstanceDecoder(dim, decoder_channels) if instance_perception else None
        self.sam = SpatialTemporalAttention(dim, heads, ffn_dim, s_branch=s_branch, t_branch=t_branch,
                                            fusion=fusion, instances=instance_perception, dropout=dropout)
        self.fusion = GlobalFusion(dim, heads, self.frames, dropout) if global_fusion else None
        self.mask_weight = float(mask_weight)
        self.contrastive_weight = float(contrastive_weight)
        self.contrastive_temperature = float(contrastive_temperature)
        self.mask_loss_on = bool(mask_loss) and instance_perception
        if not self.mask_loss_on:
            self.extra_inputs = frozenset()  # the data pipeline then loads no masks

    # -- features ----------------------------------------------------------------------------
    def _forward(self, clips: Tensor) -> tuple[dict[str, Tensor], Tensor | None]:
        """clips [B, T, 3, H, W] -> ({'frames' [B, T, C], 'global' [B, C]}, f^Ins [B*T, C, h, w] or None)."""
        b, t = clips.shape[:2]
        if t != self.frames:
            raise ValueError(f"I2ST was built for {self.frames} frames, got clips of {t}")
        f_img = self.encoder.forward_features(clips.flatten(0, 1))  # [B*T, C, h, w] (Sec. 3.3)
        f_ins = self.ipe(f_img) if self.ipe is not None else None  # Eq. 1
        f_st = self.sam(f_img, f_ins, t)  # Eq. 4 and Eq. 5 (first line): [B, T, C]
        if self.fusion is not None:
            local, glob = self.fusion(f_st)  # Eq. 5 (second line)
        else:
            local, glob = f_st, f_st.mean(dim=1)
        return {"frames": local, "global": glob}, f_ins

    def embed(self, clips: Tensor, texts: Sequence[str] | None = None) -> Features:
        """Local and global prototypes of each video; the mask decoder is not used (Sec. 3.3)."""
        return self._forward(clips)[0]

    def score_batch(self, query: Features, support: Features, support_labels: Tensor, way: int, *,
                    class_names: Sequence[Sequence[str]] | None = None) -> Tensor:
        """Eq. 6 through the `global_local` matcher; frame-level matchers (`--matcher bimhm`, `otam`:
        Table 5's local-only rows) get the local prototypes only."""
        if not isinstance(self.matcher, GlobalLocal):
            query, support = query["frames"], support["frames"]
        return self.matcher.score_batch(query, support, support_labels, way)

    # -- training ------------------------------------------------------------------------------
    def disable_mask_loss(self, reason: str) -> None:
        """Train without masks, and flag it (hparams, a warning, the `mask_loss_on` metric)."""
        if self.mask_loss_on:
            warnings.warn(f"I2ST trains WITHOUT the instance mask loss: {reason}", stacklevel=2)
        self.mask_loss_on = False
        self.extra_inputs = frozenset()
        self.hparams["mask_loss"] = False
        self.hparams["mask_loss_off_reason"] = reason

    def prepare_training(self, source: Any) -> None:
        """Before the training episodes are built: no masks configured for the dataset -> no mask loss
        (and no masks requested from the data pipeline)."""
        if self.mask_loss_on and source.mask_root is None:
            self.disable_mask_loss(f"no instance masks are configured for {source.card.name} "
                                   f"(set datasets.{source.card.name}.masks in bench.yaml)")

    def training_loss(self, batch: EpisodeBatch) -> dict[str, Tensor]:
        """Eq. 7 (+ the auxiliary contrastive loss): supports and queries share one forward pass."""
        n_s = batch.support.shape[0]
        feats, f_ins = self._forward(torch.cat([batch.support, batch.query]))
        support = {k: v[:n_s] for k, v in feats.items()}
        query = {k: v[n_s:] for k, v in feats.items()}
        logits = self.score(query, support, batch.support_labels, batch.way)
        ce = F.cross_entropy(logits, batch.query_labels)
        total = ce
        out: dict[str, Tensor] = {"ce": ce.detach()}

        has_masks = "support_masks" in batch.extras and "query_masks" in batch.extras
        if self.mask_loss_on and not has_masks:
            self.disable_mask_loss("the training batches carry no instance masks")
        if self.mask_loss_on:
            target = torch.cat([batch.extras["support_masks"], batch.extras["query_masks"]]).flatten(0, 1)
            pred = self.ipd(f_ins, size=tuple(target.shape[-2:]))  # Eq. 2
            lm = l2_mask_loss(pred, target)  # Eq. 3
            total = total + self.mask_weight * lm
            out["mask"] = lm.detach()
        out["mask_loss_on"] = torch.tensor(float(self.mask_loss_on))

        if self.contrastive_weight > 0:
            labels = torch.cat([batch.support_labels, batch.query_labels])
            lc = supervised_contrastive(feats["global"], labels, self.contrastive_temperature)
            total = total + self.contrastive_weight * lc
            out["contrastive"] = lc.detach()
        return {"loss": total, **out, "logits": logits.detach()}
