"""Action-related Instance Perception Module (IPM; I2ST Sec. 3.3, Fig. 3).

An encoder of 2D convolutions turns the backbone's image features into instance embeddings of
the same shape (Eq. 1); a decoder of convolutions and upsampling reconstructs the action-related
instance masks from them (Eq. 2), supervised by an L2 loss (Eq. 3, in `losses.mask_loss`). The
decoder only shapes the embeddings during training: it is dropped at inference (`I2ST.embed`
never calls it).

The paper gives no layer sizes (Fig. 3 is not in the text), so the encoder is a bottleneck
(1x1 reduce, 3x3, 1x1 expand) and the decoder a 1x1 projection followed by (x2 upsample,
3x3 conv) stages; the widths are hyperparameters of `I2ST`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn


def _conv_bn_relu(c_in: int, c_out: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class InstanceEncoder(nn.Module):
    """IPE, Eq. 1: f^Ins = IPE(f^Img), [N, C, H, W] -> [N, C, H, W] (same size as the image features).

    Layers: 1x1 conv C -> hidden, 3x3 conv hidden -> hidden (each with BN + ReLU), 1x1 conv hidden -> C.
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(_conv_bn_relu(dim, hidden, 1), _conv_bn_relu(hidden, hidden, 3),
                                 nn.Conv2d(hidden, dim, 1))

    def forward(self, f_img: Tensor) -> Tensor:
        return self.net(f_img)


class InstanceDecoder(nn.Module):
    """IPD, Eq. 2: M~ = IPD(f^Ins), [N, C, h, w] -> masks [N, h * 2^k, w * 2^k] in [0, 1].

    A 1x1 projection C -> channels[0], then for each further width a x2 bilinear upsampling and a
    3x3 conv (BN + ReLU), then a 1x1 conv to one channel and a sigmoid (masks are 0..1). With
    `size`, the output is resized (bilinear) to the masks' resolution.
    """

    def __init__(self, dim: int, channels: Sequence[int]) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels:
            raise ValueError("decoder_channels needs at least one width")
        layers: list[nn.Module] = [_conv_bn_relu(dim, channels[0], 1)]
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), _conv_bn_relu(c_in, c_out, 3)]
        layers.append(nn.Conv2d(channels[-1], 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, f_ins: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        logits = self.net(f_ins)
        if size is not None and tuple(logits.shape[-2:]) != tuple(size):
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits.sigmoid().squeeze(1)
