"""CLIP-FSAR (Wang et al., "CLIP-guided Prototype Modulating for Few-shot Action Recognition", IJCV
2023), as described in notes/clip_fsar.md (public code, head `CNN_OTAM_CLIPFSAR`) and MA-FSAR
Sec. 4.3.4 ("multimodal transformer": the text feature F_T is stacked along time with the support
features F_S before self-attention).

- Visual: the CLIP visual encoder, fully fine-tuned, per frame -> [T, D'] (RN50: attention-pool
  output, 1024-d; ViT: projected class token). Text: the frozen CLIP text encoder with the single
  prompt "a photo of {}" (no ensembling), raw (unnormalised) features.
- Prototype modulation: one transformer layer (`_clip.attention.AttentionLayer`, CLIP-FSAR's Transformer_v1,
  8 heads, FFN 2048, no positional encoding). Support: [8 frames; 1 text token] -> self-attention ->
  the first 8 outputs. Query: its 8 frames. k-shot: frames and texts averaged over the shots of a
  class before the transformer (MERGE_BEFORE, set in every 5-shot config; a no-op at 1 shot).
- Head: OTAM with lambda = 0.5, both directions summed; logits = -distance. Inference uses these
  logits only (no text fusion in the released configs).
- Loss: CE(OTAM logits) + w * CE(s * cos_eps(mean-frame feature before the transformer, T_train),
  global labels) over supports and queries, T_train = the texts of all training classes,
  s a learnable scalar initialised to 1, cos_eps(a, b) = <a, b> / (|a| |b| + 0.01); w = 3.0 on
  temporal datasets (SSv2) and 1.5 on spatial ones (Kinetics, UCF101; HMDB51 uses 1.2).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fsar_bench.protocol import EpisodeBatch, Matcher, map_features
from fsar_methods._clip.attention import AttentionLayer
from fsar_methods._clip.backbone import FrameEncoder
from fsar_methods._clip.base import FULL_PRESET, TINY_PRESET, ClipMethod
from fsar_methods._clip.matching import PrototypeModulatedMatcher
from fsar_methods.clip_baselines.official import CLIP_FSAR_RELEASE

# notes/clip_fsar.md Sec. 6: Adam, L2 1e-3, 16 episodes per update (nominal), 5 queries per class;
# LR 1e-5 (HMDB51, Kinetics; SSv2-Small 5e-5, UCF101 2e-6: pass --lr), 10,000 episodes.
_TRAIN = {"steps": 10_000, "lr": 1e-5, "weight_decay": 1e-3, "episodes_per_update": 16, "val_every": 1_000,
          "val_episodes": 1_000, "train_query": 5, "checkpoint_every": 500}


def cos_eps(a: Tensor, b: Tensor, eps: float = 0.01) -> Tensor:
    """a [N, D], b [C, D] -> <a, b> / (|a| |b| + eps), [N, C]."""
    return (a @ b.T) / (a.norm(dim=-1, keepdim=True) * b.norm(dim=-1)[None] + eps)


class TemporalTextTransformer(nn.Module):
    """CLIP-FSAR's prototype modulation: frames [N, T, D] (+ text [N, D]) -> [N, T, D]."""

    def __init__(self, dim: int, depth: int = 1, heads: int = 8, ffn_dim: int = 2048) -> None:
        super().__init__()
        self.layers = nn.ModuleList(AttentionLayer(dim, heads, ffn_dim) for _ in range(depth))

    def forward(self, frames: Tensor, text: Tensor | None = None) -> Tensor:
        x = frames if text is None else torch.cat([frames, text.unsqueeze(1)], dim=1)
        for layer in self.layers:
            x = layer(x, x)
        return x[:, :frames.shape[1]]


class CLIPFSAR(ClipMethod):
    """Hyperparameters: clip_model, pretrained, weights, frames, image_size; depth, heads, ffn_dim of
    the temporal transformer; merge_shots (MERGE_BEFORE); prompt ('photo' = "a photo of {}");
    text_loss_weight (None: 3.0 on temporal datasets, 1.5 on spatial ones); otam_lambda, kshot."""

    official_weights = {"release": CLIP_FSAR_RELEASE}  # `fsar-bench eval --official release` (official.py)
    presets = {
        "full": {"clip_model": "RN50-quickgelu", **FULL_PRESET},  # the released configs use RN50
        "vit_b16": {"clip_model": "ViT-B-16-quickgelu", **FULL_PRESET},
        "vit_b32": {"clip_model": "ViT-B-32-quickgelu", **FULL_PRESET},
        "tiny": {**TINY_PRESET, "ffn_dim": 256},
    }
    train_presets = {
        "full": _TRAIN, "vit_b16": _TRAIN, "vit_b32": _TRAIN,
        "tiny": {"steps": 200, "lr": 1e-3, "episodes_per_update": 1, "val_every": 100, "val_episodes": 100,
                 "train_query": 2, "checkpoint_every": 100},
    }
    default_matcher = "otam"

    def __init__(self, *, clip_model: str = "RN50-quickgelu", pretrained: str | None = None,
                 weights: str | None = None, frames: int = 8, image_size: int = 224, depth: int = 1,
                 heads: int = 8, ffn_dim: int = 2048, merge_shots: bool = True, prompt: str = "photo",
                 text_loss_weight: float | None = None, otam_lambda: float = 0.5, kshot: str = "prototype") -> None:
        super().__init__(frames=frames, image_size=image_size)
        self.visual = FrameEncoder(self.load_towers(clip_model, weights, pretrained, prompt))  # fully fine-tuned
        self.text_scale = nn.Parameter(torch.ones(()))  # s, initialised to 1.0
        self.depth, self.heads, self.ffn_dim, self.merge_shots = int(depth), int(heads), int(ffn_dim), bool(merge_shots)
        self.text_loss_weight_fixed = text_loss_weight
        self.text_loss_weight = 1.5 if text_loss_weight is None else float(text_loss_weight)
        self.metric_defaults = {"lam": float(otam_lambda), "kshot": kshot}

    def build_matcher(self, name: str, **kwargs: Any) -> Matcher:
        metric = super().build_matcher(name, **kwargs)
        module = TemporalTextTransformer(self.feature_dim, self.depth, self.heads, self.ffn_dim)
        return PrototypeModulatedMatcher(module, metric, merge_shots=self.merge_shots)

    def set_dataset(self, card: Any) -> None:
        super().set_dataset(card)
        if self.text_loss_weight_fixed is None:
            self.text_loss_weight = {"temporal": 3.0, "spatial": 1.5}[card.modality]

    def training_loss(self, batch: EpisodeBatch) -> dict[str, Tensor]:
        support = self.embed(batch.support, batch.support_texts)
        query = self.embed(batch.query)
        add = lambda t: t.unsqueeze(0)  # noqa: E731
        logits = self.matcher.score_batch(map_features(query, add), map_features(support, add),
                                          batch.support_labels.unsqueeze(0), batch.way)[0]
        ce = F.cross_entropy(logits, batch.query_labels)
        train_text = self.text(batch.split_class_names)
        feats = torch.cat([support["frames"].mean(dim=1), query["frames"].mean(dim=1)])
        targets = torch.cat([batch.global_labels[batch.support_labels], batch.global_labels[batch.query_labels]])
        text_ce = F.cross_entropy(self.text_scale * cos_eps(feats, train_text), targets)
        loss = ce + self.text_loss_weight * text_ce
        return {"loss": loss, "ce": ce.detach(), "text_ce": text_ce.detach(), "logits": logits.detach()}
