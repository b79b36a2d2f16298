"""Adam with coupled L2 weight decay except on 1-D parameters (norms, biases, scalars).

MA-FSAR Sec. 4.1.3 states Adam; the closest public recipe (alibaba / D2ST codebases,
notes/training_recipes.md Sec. 3) uses Adam with L2 weight decay 1e-3 and none on normalisation
parameters. Here every 1-D parameter is exempt (norm weights and biases, linear biases, scalars).
"""

from __future__ import annotations

import torch
from torch import nn


def adam_l2_no_1d(module: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    decay, plain = [], []
    for p in module.parameters():
        if p.requires_grad:
            (plain if p.dim() <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.Adam([g for g in groups if g["params"]], lr=lr)
