"""Joint Image-Instance Spatial-temporal Attention: the spatial and temporal sub-modules
(I2ST Sec. 3.4, Eq. 4 and the first line of Eq. 5).

Eq. 4:  f^i = FFN(MHA(f^Img(i)) + MHA(f^Ins(i))),  i in {S, T},

with the features unfolded along space (S: T sequences of HW tokens) or time (T: HW sequences of
T tokens), MHA a multi-head self-attention and FFN a feed-forward network with a residual
connection. Eq. 5 (first line): f^ST = AvgPool(f^S) + AvgPool(f^T), pooled over the spatial
positions, so f^ST holds one C-dim feature per frame.

Table 4's cross-attention variant replaces the two self-attentions by one cross-attention with
the instance embeddings as queries and the image features as keys and values.

Choices the paper leaves open (documented in docs/methods/i2st.md): a LayerNorm before each
attention and inside the FFN (pre-norm), GELU in the FFN, no positional embedding in the S/T
branches (the paper mentions positional embeddings only in the global fusion).
"""

from __future__ import annotations

from torch import Tensor, nn

FUSIONS = ("self", "cross")


class FeedForward(nn.Module):
    """x + W2 GELU(W1 LN(x)): the FFN 'with a residual connection' of Eq. 4."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class JointAttention(nn.Module):
    """One branch of Eq. 4 over sequences [B, L, C] of image features and instance embeddings.

    fusion='self': FFN(MHA(LN(img)) + MHA(LN(ins))) (the paper's final model, 'I2ST(self)').
    fusion='cross': FFN(MHA(q=LN(ins), k=v=LN(img))) ('I2ST(cross)', Table 4).
    Without instance embeddings (the IPM switched off, Table 3) the branch is FFN(MHA(LN(img))).
    """

    def __init__(self, dim: int, heads: int, ffn_dim: int, fusion: str = "self", instances: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, not {fusion!r}")
        self.fusion = fusion if instances else "image"
        mha = lambda: nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)  # noqa: E731
        self.norm_img = nn.LayerNorm(dim)
        self.attn_img = mha()  # self-attention over image features, or the cross-attention
        if self.fusion != "image":
            self.norm_ins = nn.LayerNorm(dim)
        if self.fusion == "self":
            self.attn_ins = mha()
        self.ffn = FeedForward(dim, ffn_dim, dropout)

    def forward(self, img: Tensor, ins: Tensor | None) -> Tensor:
        a = self.norm_img(img)
        if self.fusion == "image":
            x = self.attn_img(a, a, a, need_weights=False)[0]
        elif self.fusion == "self":
            b = self.norm_ins(ins)
            x = self.attn_img(a, a, a, need_weights=False)[0] + self.attn_ins(b, b, b, need_weights=False)[0]
        else:
            x = self.attn_img(self.norm_ins(ins), a, a, need_weights=False)[0]
        return self.ffn(x)


class SpatialTemporalAttention(nn.Module):
    """The S- and T-branches and their pooled sum: f^ST of Eq. 5, [B, T, C].

    Input: image features and instance embeddings [B*T, C, H, W] (frames of a video consecutive).
    With both branches off (Table 3's first rows), f^ST = AvgPool(f^Img + f^Ins): the plain
    spatial average, with the instance embeddings added when the IPM is on.
    """

    def __init__(self, dim: int, heads: int, ffn_dim: int, *, s_branch: bool = True, t_branch: bool = True,
                 fusion: str = "self", instances: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        make = lambda: JointAttention(dim, heads, ffn_dim, fusion, instances, dropout)  # noqa: E731
        self.spatial = make() if s_branch else None
        self.temporal = make() if t_branch else None

    def forward(self, f_img: Tensor, f_ins: Tensor | None, frames: int) -> Tensor:
        bt, c, h, w = f_img.shape
        b = bt // frames
        seq = lambda f: f.flatten(2).transpose(1, 2)  # [B*T, HW, C]: unfold along space  # noqa: E731
        img_s = seq(f_img)
        ins_s = seq(f_ins) if f_ins is not None else None
        parts = []
        if self.spatial is not None:
            f_s = self.spatial(img_s, ins_s)  # [B*T, HW, C]
            parts.append(f_s.mean(dim=1).view(b, frames, c))
        if self.temporal is not None:
            to_t = lambda f: f.view(b, frames, h * w, c).transpose(1, 2).reshape(b * h * w, frames, c)  # noqa: E731
            f_t = self.temporal(to_t(img_s), to_t(ins_s) if ins_s is not None else None)  # [B*HW, T, C]
            parts.append(f_t.view(b, h * w, frames, c).mean(dim=1))
        if not parts:
            pooled = img_s if ins_s is None else img_s + ins_s
            return pooled.mean(dim=1).view(b, frames, c)
        return parts[0] if len(parts) == 1 else parts[0] + parts[1]
