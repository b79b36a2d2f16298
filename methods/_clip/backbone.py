"""CLIP as the backbone of MA-FSAR and its baselines (MA-FSAR Sec. 3.2): loading, splitting into the
visual and text towers, freezing, and the token-level pieces of open_clip's ViT that the adapted
encoders (FgMA, AIM) re-assemble block by block.

`vit_tokens` + the blocks + `vit_output` reproduce `open_clip.VisionTransformer.forward` exactly
(tests/test_ma_fsar.py checks it), so the adapters only add to the frozen computation of Eqs. 1-3.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fsar_bench.errors import FsarError
from fsar_bench.weights import open_clip_model


def load_clip(name: str, weights: str | None = None, pretrained: str | None = None) -> tuple[nn.Module, nn.Module, str]:
    """(visual tower, text-only CLIP model, weights source) of an open_clip model.

    The text-only model is the CLIP module with `visual` removed: it keeps `encode_text`, the
    tokenizer-facing embeddings and `logit_scale`, and no parameter is held twice.
    """
    model, source = open_clip_model(name, weights=weights, pretrained=pretrained)
    visual = model.visual
    model.visual = None
    return visual, model, source


def freeze(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def is_vit(visual: nn.Module) -> bool:
    from open_clip.transformer import VisionTransformer

    return isinstance(visual, VisionTransformer)


def check_adaptable_vit(visual: nn.Module, what: str) -> None:
    """The token-level adapters need open_clip's plain ViT (class-token pooling, standard blocks)."""
    from open_clip.transformer import ResidualAttentionBlock

    ok = (is_vit(visual) and visual.attn_pool is None and not visual.final_ln_after_pool
          and visual.pool_type == "tok" and visual.transformer.batch_first
          and all(type(b) is ResidualAttentionBlock for b in visual.transformer.resblocks))
    if not ok:
        raise FsarError(f"{what} needs a CLIP ViT with class-token pooling (ViT-B-32, ViT-B-16, fsar-tiny-vit), "
                        f"not {type(visual).__name__}",
                        "pick a ViT clip_model, or switch the adapters off "
                        "(e.g. --set fgma=false --set finetune_visual=true)")


def vit_width(vit: nn.Module) -> int:
    return vit.conv1.out_channels


def vit_tokens(vit: nn.Module, images: Tensor, add: Tensor | None = None) -> Tensor:
    """Eq. 1: [class; patches] + positional embedding (+ `add`, e.g. AIM's temporal embedding),
    then ln_pre. images [N, 3, H, W] -> tokens [N, 1 + P, D]."""
    x = vit.conv1(images).flatten(2).transpose(1, 2)
    cls = vit.class_embedding.view(1, 1, -1).expand(x.shape[0], -1, -1).to(x.dtype)
    x = torch.cat([cls, x], dim=1) + vit.positional_embedding.to(x.dtype)
    if add is not None:
        x = x + add
    return vit.ln_pre(vit.patch_dropout(x))


def vit_output(vit: nn.Module, tokens: Tensor, project: bool = True) -> Tensor:
    """ln_post on the class token, then CLIP's projection to the joint space D' (if `project`)."""
    pooled = vit.ln_post(tokens[:, 0])
    if project and vit.proj is not None:
        pooled = pooled @ vit.proj
    return pooled


class FrameEncoder(nn.Module):
    """The unadapted CLIP visual encoder applied frame by frame: clips [B, T, 3, H, W] -> [B, T, D'].

    Used by the CLIP-RN50 variant of MA-FSAR (no FgMA, Sec. 4.1.2), CLIP-FSAR and zero-shot CLIP.
    `text` is accepted and ignored (the plain encoder has no token-level text input).
    """

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.visual = visual
        self.output_dim = int(visual.output_dim)

    def forward(self, clips: Tensor, text: Tensor | None = None) -> Tensor:
        b, t = clips.shape[:2]
        return self.visual(clips.flatten(0, 1)).view(b, t, -1)
