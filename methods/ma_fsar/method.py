"""MA-FSAR: Multimodal Adaptation of CLIP for few-shot action recognition (Xing et al.; the paper is
shared/papers/ma_fsar.txt). Architecture overview in Sec. 3.2 / Fig. 2:

  supports: FgMA-adapted CLIP ViT with their class text (LMA)  -> F_S [T, D'];  text encoder -> F_T
  queries:  FgMA-adapted CLIP ViT without text (LSTA)          -> F_Q [T, D']
  TPCM (shared weights) -> F~_S, F~_Q;  metric M (OTAM) -> p_Q2S, L_Q2S       (Eqs. 9-13)
  cos(avg F, F_T) -> p_S2T, p_Q2T, KL losses L_S2T, L_Q2T                     (Eqs. 14-15)
  L = alpha (L_S2T + L_Q2T) / 2 + (1 - alpha) L_Q2S;  p = alpha p_Q2T + (1 - alpha) p_Q2S   (Eqs. 16-17)

alpha is 0.75 on spatial datasets and 0.25 on temporal ones (Sec. 4.1.2), read from the dataset
card in `set_dataset`. Variants (Sec. 4.1.2): CLIP ViT-B/32 or ViT-B/16 with FgMA (CLIP frozen,
PEFT), and CLIP-RN50 fully fine-tuned without FgMA (text encoder frozen).

`embed` returns {'frames': [B, T, D'], 'text': [B, D']}; 'text' is the class text feature F_T of a
support (zeros for a query), so `score_batch` can compute p_Q2T from the supports of the episode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from fsar_bench.errors import FsarError
from fsar_bench.protocol import EpisodeBatch, Features, Matcher, map_features
from fsar_methods._clip.backbone import FrameEncoder, freeze
from fsar_methods._clip.base import FULL_PRESET, TINY_PRESET, ClipMethod
from fsar_methods._clip.matching import PrototypeModulatedMatcher
from fsar_methods.ma_fsar import losses
from fsar_methods.ma_fsar.fgma import FgMAViT
from fsar_methods.ma_fsar.tpcm import TPCM

# Episodes (training steps) per Sec. 4.1.3: 10,000 (100,000 on SSv2: pass --steps 100000). LR, batching
# and weight decay are not in the paper: D2ST's adapter-tuning recipe (notes/adapters.md Sec. 4).
_TRAIN_PEFT = {"steps": 10_000, "lr": 1e-3, "weight_decay": 1e-3, "episodes_per_update": 16, "val_every": 1_000,
               "val_episodes": 1_000, "train_query": 5, "checkpoint_every": 500}


class MAFSAR(ClipMethod):
    """MA-FSAR (FgMA + TPCM + text fusion).

    Hyperparameters:
        clip_model: open_clip model name ('-quickgelu' names for OpenAI weights).
        pretrained / weights: open_clip hub tag, or a local CLIP state-dict file (see fsar_bench.weights).
        fgma: insert FgMA in the (frozen) ViT (Sec. 3.3). False: plain CLIP visual encoder.
        finetune_visual: train the whole visual encoder (the CLIP-RN50 variant; needs fgma=False).
        adapter_ratio: adapter bottleneck ratio (0.25). joint_scale: r of Eq. 8 (0.5).
        gta, gta_input_adapter, joint_adapter, lma_text: ablation switches of FgMA (Tables 4-5).
        tpcm, tpcm_heads, tpcm_ffn_dim: TPCM (Sec. 3.4) and its size.
        prompt: 'mixture' (16 templates of Table 10), 'cls' or 'photo_action' (Table 9).
        alpha: loss / fusion weight of Eqs. 16-17; None: alpha_spatial or alpha_temporal by the
            dataset card's modality.
        otam_lambda, kshot: settings passed to the metric when it takes them (OTAM's soft-min lambda;
            the k-shot rule of OTAM / Bi-MHM).
    """

    presets = {
        "full": {"clip_model": "ViT-B-32-quickgelu", **FULL_PRESET},
        "vit_b16": {"clip_model": "ViT-B-16-quickgelu", **FULL_PRESET},
        "rn50": {"clip_model": "RN50-quickgelu", "fgma": False, "finetune_visual": True, **FULL_PRESET},
        "tiny": {**TINY_PRESET, "tpcm_ffn_dim": 256},
    }
    train_presets = {
        "full": _TRAIN_PEFT,
        "vit_b16": _TRAIN_PEFT,
        # Full fine-tuning of CLIP-RN50: CLIP-FSAR's learning-rate range (notes/clip_fsar.md Sec. 6).
        "rn50": {**_TRAIN_PEFT, "lr": 2e-5},
        # CPU smoke run: adapters on a random, frozen tiny CLIP learn slowly; a larger LR helps.
        "tiny": {"steps": 200, "lr": 5e-3, "episodes_per_update": 1, "val_every": 100, "val_episodes": 100,
                 "train_query": 2, "checkpoint_every": 100},
    }
    default_matcher = "otam"
    zero_shot = True  # Table 11: the text branch alone at shot 0 (score_batch)

    def __init__(self, *, clip_model: str = "ViT-B-32-quickgelu", pretrained: str | None = None,
                 weights: str | None = None, frames: int = 8, image_size: int = 224, fgma: bool = True,
                 finetune_visual: bool = False, adapter_ratio: float = 0.25, joint_scale: float = 0.5,
                 gta: bool = True, gta_input_adapter: bool = True, joint_adapter: bool = True,
                 lma_text: bool = True, tpcm: bool = True, tpcm_heads: int = 8, tpcm_ffn_dim: int = 2048,
                 prompt: str = "mixture", alpha: float | None = None, alpha_spatial: float = 0.75,
                 alpha_temporal: float = 0.25, otam_lambda: float = 0.5, kshot: str = "prototype") -> None:
        super().__init__(frames=frames, image_size=image_size)
        if fgma and finetune_visual:
            raise FsarError("fgma=true keeps CLIP frozen (PEFT); finetune_visual=true is the no-FgMA variant",
                            "pass one of them, e.g. --set fgma=false --set finetune_visual=true")
        visual = self.load_towers(clip_model, weights, pretrained, prompt)
        if fgma:
            self.visual = FgMAViT(visual, self.feature_dim, ratio=adapter_ratio, joint_scale=joint_scale, gta=gta,
                                  gta_input_adapter=gta_input_adapter, joint=joint_adapter, lma_text=lma_text)
        else:
            self.visual = FrameEncoder(visual if finetune_visual else freeze(visual))
        if self.visual.output_dim != self.feature_dim:
            raise FsarError(f"{clip_model}: visual output {self.visual.output_dim} != text width {self.feature_dim}",
                            "use a CLIP model with a joint image-text space")
        self.use_tpcm, self.tpcm_heads, self.tpcm_ffn_dim = bool(tpcm), int(tpcm_heads), int(tpcm_ffn_dim)
        self.alpha_fixed = alpha
        self.alpha_by_modality = {"spatial": float(alpha_spatial), "temporal": float(alpha_temporal)}
        self.alpha = float(alpha) if alpha is not None else self.alpha_by_modality["spatial"]
        self.metric_defaults = {"lam": float(otam_lambda), "kshot": kshot}

    # -- head ----------------------------------------------------------------------------------
    def build_matcher(self, name: str, **kwargs: Any) -> Matcher:
        """TPCM (Eqs. 9-12, weights shared by supports and queries) before the metric M of Eq. 13."""
        metric = super().build_matcher(name, **kwargs)
        module = TPCM(self.feature_dim, self.tpcm_heads, self.tpcm_ffn_dim) if self.use_tpcm else None
        return PrototypeModulatedMatcher(module, metric)

    def set_dataset(self, card: Any) -> None:
        """alpha = 0.75 on spatial datasets, 0.25 on temporal ones (Sec. 4.1.2), unless fixed."""
        super().set_dataset(card)
        if self.alpha_fixed is None:
            self.alpha = self.alpha_by_modality[card.modality]

    # -- features ------------------------------------------------------------------------------
    def embed(self, clips: Tensor, texts: Sequence[str] | None = None) -> Features:
        text = self.text_features(texts)
        return self.frames_and_text(self.visual(clips, text), text)

    def _branches(self, query: Features, support: Features, support_labels: Tensor, way: int
                  ) -> tuple[Tensor, Tensor, Tensor]:
        """(Q2S logits [E, Q, way], Q2T logits [E, Q, way], class texts [E, way, D'])."""
        q2s = self.matcher.score_batch(query, support, support_labels, way)
        text = losses.class_text(support["text"], support_labels, way)
        q2t = losses.video_text_logits(query["frames"].mean(dim=2), text, self.text.logit_scale)
        return q2s, q2t, text

    def score_batch(self, query: Features, support: Features, support_labels: Tensor, way: int, *,
                    class_names: Sequence[Sequence[str]] | None = None, **kwargs: Any) -> Tensor:
        """log p with p = alpha p_Q2T + (1 - alpha) p_Q2S (Eq. 17).

        Episodes without supports (shot 0, Table 11) use the text-to-video branch alone, with the
        class texts of `class_names`.
        """
        if support_labels.shape[1] == 0:
            if class_names is None:
                raise FsarError("an episode without supports needs its class names",
                                "call score_batch(..., class_names=[[name, ...], ...])")
            e = len(class_names)
            text = self.text([n for names in class_names for n in names]).view(e, way, -1).to(query["frames"])
            return losses.video_text_logits(query["frames"].mean(dim=2), text, self.text.logit_scale)
        q2s, q2t, _ = self._branches(query, support, support_labels, way)
        return losses.fused_log_probs(q2t, q2s, self.alpha)

    # -- training ------------------------------------------------------------------------------
    def training_loss(self, batch: EpisodeBatch) -> dict[str, Tensor]:
        """Eq. 16 on one episode: supports embedded with a random template of their class text."""
        add = lambda t: t.unsqueeze(0)  # noqa: E731
        support = map_features(self.embed(batch.support, batch.support_texts), add)
        query = map_features(self.embed(batch.query), add)
        labels = batch.support_labels.unsqueeze(0)
        q2s, q2t, text = self._branches(query, support, labels, batch.way)
        s2t = losses.video_text_logits(support["frames"].mean(dim=2), text, self.text.logit_scale)
        l_q2s = F.cross_entropy(q2s[0], batch.query_labels)
        l_q2t = losses.video_text_kl(q2t[0], batch.query_labels)
        l_s2t = losses.video_text_kl(s2t[0], batch.support_labels)
        loss = losses.total_loss(self.alpha, l_s2t, l_q2t, l_q2s)
        fused = losses.fused_log_probs(q2t[0], q2s[0], self.alpha)
        return {"loss": loss, "q2s": l_q2s.detach(), "q2t": l_q2t.detach(), "s2t": l_s2t.detach(),
                "logits": fused.detach()}
