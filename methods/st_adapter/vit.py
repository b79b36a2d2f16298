"""A frozen CLIP vision transformer (open_clip `VisionTransformer`) run block by block, with an
optional adapter in each block: the shared machinery of the adapter-tuning methods (ST-Adapter,
DMGAL-Adapter).

Block with an adapter A at `position` (pre-LN CLIP block; adapters.md sections 1 and 3):
    'pre_attn':  x = A(x);  x = x + Attn(ln_1 x);  x = x + MLP(ln_2 x)     (ST-Adapter's adapter_pre_attn)
    'pre_mlp':   x = x + Attn(ln_1 x);  x = A(x);  x = x + MLP(ln_2 x)     (ST-Adapter's adapter_pre_mlp)
    'post_mlp':  x = x + Attn(ln_1 x);  x = x + MLP(ln_2 x);  x = A(x)     (D2ST-Adapter)
Frame features are the class token after ln_post (768-d on ViT-B/16), optionally through `proj`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

POSITIONS = ("pre_attn", "pre_mlp", "post_mlp")
Adapter = Callable[[Tensor], Tensor]  # frame tokens [M, N, D] -> [M, N, D]


def check_position(position: str) -> str:
    if position not in POSITIONS:
        raise ValueError(f"adapter position must be one of {POSITIONS}, not {position!r}")
    return position


class FrozenViT(nn.Module):
    """Wraps `visual` (an open_clip VisionTransformer) and freezes all its parameters."""

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.visual = visual
        for p in visual.parameters():
            p.requires_grad_(False)
        self.batch_first = bool(getattr(visual.transformer, "batch_first", False))
        self.width = int(visual.conv1.out_channels)
        self.grid = tuple(int(g) for g in visual.grid_size)
        self.depth = len(visual.transformer.resblocks)
        proj = getattr(visual, "proj", None)
        self.proj_dim = int(proj.shape[1]) if proj is not None else self.width

    def tokens(self, frames: Tensor) -> Tensor:
        """Images [M, 3, H, W] -> tokens entering block 0 [M, 1 + h*w, D] (VisionTransformer._embeds)."""
        v = self.visual
        x = v.conv1(frames).flatten(2).transpose(1, 2)  # [M, h*w, D]
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        return v.ln_pre(v.patch_dropout(x))

    def block(self, index: int, x: Tensor, adapter: Adapter | None = None, position: str = "pre_mlp") -> Tensor:
        """Block `index` on frame tokens [M, N, D], with `adapter` at `position`."""
        blk = self.visual.transformer.resblocks[index]
        if adapter is not None and position == "pre_attn":
            x = adapter(x)
        y = blk.ln_1(x)
        y = y if self.batch_first else y.transpose(0, 1)
        y = blk.attention(y)
        x = x + blk.ls_1(y if self.batch_first else y.transpose(0, 1))
        if adapter is not None and position == "pre_mlp":
            x = adapter(x)
        x = x + blk.ls_2(blk.mlp(blk.ln_2(x)))
        if adapter is not None and position == "post_mlp":
            x = adapter(x)
        return x

    def readout(self, x: Tensor, proj: bool = False) -> Tensor:
        """Frame features from the final tokens [M, N, D]: ln_post of the class token (-> [M, D]),
        through `proj` if asked ([M, proj_dim])."""
        out = self.visual.ln_post(x[:, 0])
        if proj and self.visual.proj is not None:
            out = out @ self.visual.proj
        return out


def per_video(adapter: nn.Module, frames: int) -> Adapter:
    """Adapt a video adapter ([B, T, N, D] -> same) to the block's frame tokens [B*T, N, D]."""
    return lambda x: adapter(x.unflatten(0, (-1, frames))).flatten(0, 1)
