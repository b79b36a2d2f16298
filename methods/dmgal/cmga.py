"""Cross Motion-Guided Attention, C-MGA (DMGAL Sec. III-B2, Eqs. 10-14): task-level attention from
each query frame to the support set, guided by motion. It needs the whole episode, so it runs
in the matcher (matchers.py), batched over episodes.

For query video m, frame i (tokens [HW, c], c = D / r2), with the support set's motion tokens of
frame i over all N*K support videos (frame-wise, the paper's choice) or of all frames
(frame-all, Table VIII's ablation):
  C^B_{m,i} = M_{Q,m}(F_i, F_{i+1}) M_S(F_i, F_{i+1})^T / sqrt(c)              Eq. 10
  C^F_{m,i} = M_{Q,m}(F_{i+1}, F_i) M_S(F_{i+1}, F_i)^T / sqrt(c)              Eq. 11
  C_{m,i}   = softmax over the support keys (Eq. 12; or the release's mean of two softmaxes)
  F~_{Q,m,i} = lambda1 C_{m,i} Phi_3(F_S)_i + lambda2 Phi_3(F_{Q,m})_i + F_{Q,m,i}   Eq. 13
  F~_{S,n,i} = lambda2 Phi_3(F_{S,n})_i + F_{S,n,i}                              Eq. 14
lambda1 (cross) and lambda2 (self) start at 0 (the release's gates gamma2 and gamma1). Supports
never attend to queries, so enhanced supports do not depend on the episode.

Release details kept (dmgal.md section 4): LayerNorm(c) on the motion tokens (config.token_norm),
no positional encoding, attention dropout 0.1, and the support and query sets pass through the
motion extractor separately, support set first (in training, BatchNorm normalises each set with
its own statistics, and the order of the two updates decides the running statistics).
Parameters (release variant): 9D + Dc + 19c^2 + 17c + 2 (Table VII: 22.06M / 6.06M / 1.79M / 0.59M
at r2 = 2 / 4 / 8 / 16, D = 2048).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from fsar_methods.dmgal.motion import (MGAConfig, MotionExtractor, Phi3, from_tokens, fuse_attention, init_mga_,
                                      to_tokens)

ATTENTION_MODES = ("frame_wise", "frame_all")


class CrossMGA(nn.Module):
    """Eqs. 10-14 on episodes: query [E, Q, T, D, H, W], support [E, S, T, D, H, W] -> both enhanced.

    Args:
        dim: channels D. reduction: r2. config: variant switches (motion.MGAConfig).
        attention: 'frame_wise' (query frame i attends to frame i of every support video) or
            'frame_all' (to every frame of every support video; Table VIII).
    """

    def __init__(self, dim: int, reduction: int, config: MGAConfig, attention: str = "frame_wise") -> None:
        super().__init__()
        if attention not in ATTENTION_MODES:
            raise ValueError(f"C-MGA attention must be one of {ATTENTION_MODES}, not {attention!r}")
        self.config = config
        self.frame_wise = attention == "frame_wise"
        self.motion = MotionExtractor(dim, reduction, config)
        self.norm = nn.LayerNorm(self.motion.channels) if config.token_norm else nn.Identity()
        self.phi3 = Phi3(dim, config.phi3)
        self.lambda1 = nn.Parameter(torch.zeros(1))  # cross term of Eq. 13
        self.lambda2 = nn.Parameter(torch.zeros(1))  # self term of Eqs. 13-14
        self.drop = nn.Dropout(config.dropout)
        init_mga_(self)

    def _motion_tokens(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """[E, N, T, D, H, W] -> forward and backward motion tokens [E, N, T, HW, c]."""
        e, n = x.shape[:2]
        maps = self.motion(x.flatten(0, 1))
        return tuple(self.norm(to_tokens(m)).unflatten(0, (e, n)) for m in maps)  # type: ignore[return-value]

    def _keys(self, x: Tensor) -> Tensor:
        """Support tokens [E, S, T, P, C] -> keys [E, T, S*P, C] (frame-wise) or [E, S*T*P, C] (frame-all)."""
        return x.transpose(1, 2).flatten(2, 3) if self.frame_wise else x.flatten(1, 3)

    def cross(self, q_fwd: Tensor, q_bwd: Tensor, s_fwd: Tensor, s_bwd: Tensor, s_values: Tensor) -> Tensor:
        """C_{m,i} Phi_3(F_S)_i of Eq. 13 as tokens [E, Q, T, HW, D]."""
        scale = 1.0 / math.sqrt(q_fwd.shape[-1])
        pattern = "eqtpc,etkc->eqtpk" if self.frame_wise else "eqtpc,ekc->eqtpk"
        logits = [torch.einsum(pattern, q, self._keys(s)) * scale for q, s in ((q_fwd, s_fwd), (q_bwd, s_bwd))]
        attn = fuse_attention(logits[0], logits[1], self.config.fusion, self.drop)  # [E, Q, T, HW, keys]
        pattern = "eqtpk,etkd->eqtpd" if self.frame_wise else "eqtpk,ekd->eqtpd"
        return torch.einsum(pattern, attn, self._keys(s_values))

    def forward(self, query: Tensor, support: Tensor) -> tuple[Tensor, Tensor]:
        e, n_q = query.shape[:2]
        n_s = support.shape[1]
        h, w = query.shape[-2:]
        # Support set first, as the release (spa_mix_2.forward): in training the order decides the
        # BatchNorm running statistics (tests/test_golden_dmgal.py).
        s_fwd, s_bwd = self._motion_tokens(support)
        q_fwd, q_bwd = self._motion_tokens(query)
        s_self = self.phi3(support.flatten(0, 1)).unflatten(0, (e, n_s))  # Phi_3(F_S)
        q_self = self.phi3(query.flatten(0, 1)).unflatten(0, (e, n_q))  # Phi_3(F_Q)
        cross = from_tokens(self.cross(q_fwd, q_bwd, s_fwd, s_bwd, to_tokens(s_self)), h, w)
        query = query + self.lambda1 * cross + self.lambda2 * q_self  # Eq. 13
        support = support + self.lambda2 * s_self  # Eq. 14
        return query, support
