"""Fine-grained Multimodal Adaptation (FgMA), MA-FSAR Sec. 3.3, inside a frozen open_clip ViT.

Per ViT block l, with z^(l-1) [B*T, N+1, D] the frame tokens (class token first), and the frozen
block's own LN/MSA/MLP weights reused by every attention (GT-MSA, LST-MSA and LM-MSA share them,
Fig. 3 caption):

  Global Temporal Adaptation (GTA, Eq. 4), on the class tokens only, attention over the T frames:
      x_TA^(l) = x_cls + Adapter_GTA(GT-MSA(LN(x_cls)))              Adapter_GTA without skip
  Local Spatiotemporal / Multimodal Adaptation (LSTA for queries, Eq. 5; LMA for supports, Eqs. 6-7),
  attention over the tokens of one frame plus the appended tokens:
      query:   z_in = [z^(l-1); x_TA^(l)]                          (N+2 tokens)
      support: z_in = [z^(l-1); x_TA^(l); Repeat(FC_text(F_T))]    (N+3 tokens)
      z = z_in + Adapter_L(LM-MSA(LN(z_in)))                       Adapter_L with skip, shared by LSTA/LMA
  Select: keep the leading N+1 tokens (Sec. 3.3.3).
  Joint Adaptation (JA, Eq. 8), parallel to the frozen MLP:
      z^(l) = z + MLP(LN(z)) + r * Adapter_J(LN(z))                 Adapter_J without skip (AIM), r = 0.5

FC_text (D' -> D) is one layer shared across all blocks (Eq. 6).

`gta_input_adapter` adds AIM's second temporal adapter (`T_Adapter_in`, with skip, applied to
LN(x_cls) before GT-MSA; AIM num_tadapter = 2). Eq. 4 draws a single adapter, but Table 4's "+ GTA"
row adds 7.16 M tunable parameters at ViT-B/32, which is two 0.296 M adapters in each of the 12
blocks; see docs/methods/ma_fsar.md (parameter counts). The ablation switches `gta`, `joint` and
`lma_text` give the rows of Tables 4 and 5.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fsar_methods._clip.adapter import Adapter
from fsar_methods._clip.backbone import check_adaptable_vit, freeze, vit_output, vit_tokens, vit_width


class FgMALayer(nn.Module):
    """The trainable part of FgMA for one frozen ViT block (the block is passed to `forward`)."""

    def __init__(self, dim: int, ratio: float = 0.25, joint_scale: float = 0.5, gta: bool = True,
                 gta_input_adapter: bool = True, joint: bool = True) -> None:
        super().__init__()
        self.gta_in = Adapter(dim, ratio, skip=True) if gta and gta_input_adapter else None
        self.gta = Adapter(dim, ratio, skip=False) if gta else None
        self.local = Adapter(dim, ratio, skip=True)
        self.joint = Adapter(dim, ratio, skip=False) if joint else None
        self.joint_scale = float(joint_scale)

    def global_temporal(self, block: nn.Module, cls: Tensor) -> Tensor:
        """Eq. 4: class tokens [B, T, D] -> x_TA [B, T, D] (attention over T)."""
        h = block.ln_1(cls)
        if self.gta_in is not None:
            h = self.gta_in(h)
        return cls + self.gta(block.attention(h))

    def forward(self, block: nn.Module, z: Tensor, frames: int, text_token: Tensor | None = None) -> Tensor:
        n_tok, dim = z.shape[1], z.shape[2]
        parts = [z]
        if self.gta is not None:
            cls = z[:, 0].reshape(-1, frames, dim)
            parts.append(self.global_temporal(block, cls).reshape(-1, 1, dim))
        if text_token is not None:
            parts.append(text_token)
        z_in = torch.cat(parts, dim=1) if len(parts) > 1 else z
        z = z_in + block.ls_1(self.local(block.attention(block.ln_1(z_in))))  # Eqs. 5 / 7
        z = z[:, :n_tok]  # Select: the leading N+1 tokens
        h = block.ln_2(z)  # Eq. 8
        out = z + block.ls_2(block.mlp(h))
        if self.joint is not None:
            out = out + self.joint_scale * self.joint(h)
        return out


class FgMAViT(nn.Module):
    """A frozen open_clip ViT with FgMA: clips [B, T, 3, H, W] (+ F_T [B, D'] for supports) -> [B, T, D'].

    The output of each frame is CLIP's own head: ln_post on the class token, then the projection to
    the joint image-text space D' (so F_S, F_Q and F_T share a space, Eqs. 9-15).
    """

    def __init__(self, vit: nn.Module, text_dim: int, *, ratio: float = 0.25, joint_scale: float = 0.5,
                 gta: bool = True, gta_input_adapter: bool = True, joint: bool = True,
                 lma_text: bool = True) -> None:
        super().__init__()
        check_adaptable_vit(vit, "FgMA")
        self.vit = freeze(vit)
        width = vit_width(vit)
        self.fc_text = nn.Linear(text_dim, width) if lma_text else None  # Eq. 6, shared by all layers
        self.layers = nn.ModuleList(
            FgMALayer(width, ratio, joint_scale, gta, gta_input_adapter, joint) for _ in vit.transformer.resblocks)
        self.output_dim = int(vit.output_dim)

    def text_token(self, text: Tensor, frames: int) -> Tensor:
        """Eq. 6: Repeat(FC_text(F_T)) -> [B*T, 1, D]."""
        tok = self.fc_text(text)
        return tok[:, None, None, :].expand(-1, frames, 1, -1).reshape(-1, 1, tok.shape[-1])

    def forward(self, clips: Tensor, text: Tensor | None = None) -> Tensor:
        b, t = clips.shape[:2]
        z = vit_tokens(self.vit, clips.flatten(0, 1))
        tok = self.text_token(text, t) if text is not None and self.fc_text is not None else None
        for block, layer in zip(self.vit.transformer.resblocks, self.layers):
            z = layer(block, z, t, tok)
        return vit_output(self.vit, z).view(b, t, -1)
