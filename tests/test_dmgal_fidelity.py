"""DMGAL-Adapter's two readings of the paper's "simplified" MGA adapters (an assumption, labelled
in the card and in `fsar-bench list methods`; docs/methods/dmgal.md)."""

from __future__ import annotations

import pytest
import torch

from fsar_methods.dmgal.adapters import CmgaAdapter, SmgaAdapter
from fsar_methods.dmgal.motion import MotionExtractor, mga_config


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_single_scale_motion_is_the_1x1_conv_of_the_differences():
    """Eq. 2 with N = 1: M = Conv1x1(C), no 3x3 branches (and their BatchNorms) at all."""
    torch.manual_seed(0)
    ext = MotionExtractor(16, 4, mga_config("release", {"multi_scale": False})).eval()
    assert not hasattr(ext, "full_scale") and not hasattr(ext, "pooled_scale")
    x = torch.randn(2, 3, 16, 5, 5)
    fwd, bwd = ext(x)
    d_fwd, d_bwd = ext.differences(x)
    agg = lambda d: ext.aggregate(d.flatten(0, 1)).view_as(d)  # noqa: E731
    torch.testing.assert_close(fwd, agg(d_fwd))
    torch.testing.assert_close(bwd, agg(d_bwd))


def test_simplified_adapters_drop_the_mixer_and_the_multi_scale_convs():
    """Counts at the full preset's adapter size (ViT-B/16: D = 768, width 192, r = 4, c = 48)."""
    full, simple = mga_config("release"), mga_config("release", {"multi_scale": False})
    s_full, s_simple = SmgaAdapter(768, 192, 8, (14, 14), 4, full), SmgaAdapter(768, 192, 8, (14, 14), 4, simple, False)
    c_full, c_simple = CmgaAdapter(768, 192, (14, 14), 4, full), CmgaAdapter(768, 192, (14, 14), 4, simple)
    mixer = 2 * (8 * 8 + 8) + 2 * (192 * 192 + 192)  # Eqs. 8-9
    branches = 2 * (9 * 48 * 48 + 2 * 48)  # the two 3x3 convs of Eq. 2 with their BatchNorms
    assert _count(s_full) - _count(s_simple) == mixer + branches
    assert _count(c_full) - _count(c_simple) == branches
    assert (_count(s_simple), _count(c_simple)) == (309_649, 309_746)


def test_mga_form_switch_and_its_label(cli):
    from fsar_bench.registry import create_method, method_class

    m = create_method("dmgal_adapter", preset="tiny", mga_form="simplified")
    assert m.adapters[0].smga.mixer is None and not m.mga.multi_scale
    with pytest.raises(ValueError, match="mga_form"):
        create_method("dmgal_adapter", preset="tiny", mga_form="lite")
    labels = method_class("dmgal_adapter").card().labels
    assert any(label.startswith("assumption:") and "mga_form=simplified" in label for label in labels)
    out = cli("list", "methods")
    assert out.code == 0 and "assumption:" in out.out
