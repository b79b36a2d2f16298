"""DMGAL's frame differences (Eq. 1 in both directions; methods/dmgal/motion.py) on fixed values.

The differences are checked on a one-channel video whose frames are constant maps, with the
compression made the identity (1x1 conv weight 1, batch norm in eval mode with mean 0, var 1 - eps)
and Phi_2 a depth-wise 3x3 kernel that only doubles the centre pixel. Then B_i = v_i and
Phi_2(B_i) = 2 v_i, and Eq. 1 (paper: C(F_i, F_j) = F_i - Phi_2(F_j)) gives numbers one can check by
hand. The release computes Phi_2(B_nb) - B_i (sign s = -1); the 'previous' backward pairs F_i with
F_{i-1} (release), 'next' reads Eq. 3 literally as C(F_{i+1}, F_i).
"""

from __future__ import annotations

import pytest
import torch

from fsar_methods.dmgal.motion import MotionExtractor, mga_config

FRAMES = [1.0, 3.0, 5.0, 2.0]  # v_0 .. v_3

# Hand-derived (v = 1, 3, 5, 2; Phi_2(B_i) = 2 v_i; the missing neighbour gives 0):
#   release forward  (i = 0..2): 2 v_{i+1} - v_i = 6-1, 10-3, 4-5          -> 5, 7, -1, 0
#   release backward (i = 1..3): 2 v_{i-1} - v_i = 2-3, 6-5, 10-2 (i=0: 0)  -> 0, -1, 1, 8
#   paper forward    (i = 0..2): v_i - 2 v_{i+1} = 1-6, 3-10, 5-4           -> -5, -7, 1, 0
#   paper backward   (i = 0..2): v_{i+1} - 2 v_i = 3-2, 5-6, 2-10 (i=3: 0)  -> 1, -1, -8, 0
EXPECTED = {
    "release": ([5.0, 7.0, -1.0, 0.0], [0.0, -1.0, 1.0, 8.0]),
    "paper": ([-5.0, -7.0, 1.0, 0.0], [1.0, -1.0, -8.0, 0.0]),
}


def _identity_extractor(variant: str) -> MotionExtractor:
    ext = MotionExtractor(1, 1, mga_config(variant)).eval()
    conv, bn = ext.compress
    with torch.no_grad():
        conv.weight.fill_(1.0)
        bn.weight.fill_(1.0)
        bn.bias.zero_()
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)  # (x - 0) / sqrt(1 - eps + eps) = x
        ext.phi2.weight.zero_()
        ext.phi2.weight[0, 0, 1, 1] = 2.0  # Phi_2(B) = 2 B, no neighbour pixels
    return ext


def _video(size: int = 3) -> torch.Tensor:
    """[N=1, T=4, C=1, size, size], frame i constant v_i."""
    return torch.tensor(FRAMES).view(1, 4, 1, 1, 1).expand(1, 4, 1, size, size).contiguous()


@pytest.mark.parametrize("variant", ["release", "paper"])
def test_frame_differences_fixed_values(variant):
    fwd, bwd = _identity_extractor(variant).differences(_video())
    assert fwd.shape == bwd.shape == (1, 4, 1, 3, 3)
    exp_fwd, exp_bwd = EXPECTED[variant]
    for i in range(4):  # constant maps stay constant: the kernel has no off-centre weights
        torch.testing.assert_close(fwd[0, i], torch.full((1, 3, 3), exp_fwd[i]), msg=f"forward, frame {i}")
        torch.testing.assert_close(bwd[0, i], torch.full((1, 3, 3), exp_bwd[i]), msg=f"backward, frame {i}")


def test_individual_switches_change_only_their_part():
    """diff_sign alone flips both directions; backward alone moves the backward pair, not the forward one."""
    x = _video(2)

    def run(**options):
        ext = _identity_extractor("release")
        ext.config = mga_config("release", options)
        return ext.differences(x)

    fwd, bwd = run(diff_sign="paper")  # release pairs, paper sign
    torch.testing.assert_close(fwd[0, :, 0, 0, 0], torch.tensor([-5.0, -7.0, 1.0, 0.0]))
    torch.testing.assert_close(bwd[0, :, 0, 0, 0], torch.tensor([0.0, 1.0, -1.0, -8.0]))
    fwd, bwd = run(backward="next")  # release sign, Eq. 3 pairs
    torch.testing.assert_close(fwd[0, :, 0, 0, 0], torch.tensor([5.0, 7.0, -1.0, 0.0]))
    torch.testing.assert_close(bwd[0, :, 0, 0, 0], torch.tensor([-1.0, 1.0, 8.0, 0.0]))
