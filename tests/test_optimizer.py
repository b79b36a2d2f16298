"""Method.configure_optimizer: optional no-decay group for normalisation layers."""

from __future__ import annotations

from torch import nn

from fsar_bench import Method, registry


class Normed(Method):
    no_decay_on_norms = True

    def __init__(self) -> None:
        super().__init__(frames=2, image_size=16)
        self.body = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3))
        self.body[0].requires_grad_(False)


def test_norm_layers_get_no_weight_decay():
    m = Normed()
    decay, no_decay = m.configure_optimizer(1e-3, 0.1).param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(p) for p in m.body[2].parameters()}  # frozen Linear left out
    assert {id(p) for p in no_decay["params"]} == {id(p) for p in [*m.body[1].parameters(), *m.body[3].parameters()]}
    Normed.no_decay_on_norms = False
    try:
        (group,) = m.configure_optimizer(1e-3, 0.1).param_groups
        assert group["weight_decay"] == 0.1 and len(group["params"]) == 6
    finally:
        Normed.no_decay_on_norms = True


def test_hosted_methods_declare_it():
    for name in ("dmgal_adapter", "i2st"):
        assert registry.method_class(name).no_decay_on_norms
