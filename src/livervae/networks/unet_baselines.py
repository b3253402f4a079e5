"""The 2D U-Net baselines of the patch VAE: MONAI's UNet and a ResNet-50-encoder U-Net (MONAI FlexibleUNet).

The ResNet-50 encoder is built with random weights (`pretrained=False`): nothing is downloaded, so the comparison
with the patch VAE (also trained from scratch) is like for like.
"""

from __future__ import annotations

from collections.abc import Sequence

from monai.networks.nets import FlexibleUNet, UNet
from torch import nn

BASELINES = ("unet", "resnet50_unet")


def build_unet_baseline(
    name: str = "unet",
    in_channels: int = 1,
    out_channels: int = 2,
    channels: Sequence[int] = (16, 32, 64, 128, 256),
    num_res_units: int = 2,
    dropout: float = 0.0,
) -> nn.Module:
    """Build a baseline by name.

    Args:
        name: "unet" (MONAI UNet, strides 2, `channels` per level) or "resnet50_unet" (MONAI FlexibleUNet with a
            randomly initialised ResNet-50 encoder; inputs must divide by 32).
        in_channels: input channels (1: the liver-windowed slice).
        out_channels: output channels (2: background, tumour).
        channels: UNet channels per level (ignored by the ResNet-50 variant).
        num_res_units: UNet residual units per level.
        dropout: dropout probability (the name MONAI Label sets).
    """
    if name == "unet":
        return UNet(
            spatial_dims=2,
            in_channels=in_channels,
            out_channels=out_channels,
            channels=tuple(channels),
            strides=(2,) * (len(channels) - 1),
            num_res_units=num_res_units,
            norm="BATCH",
            dropout=dropout,
        )
    if name == "resnet50_unet":
        return FlexibleUNet(
            in_channels=in_channels,
            out_channels=out_channels,
            backbone="resnet50",
            pretrained=False,
            spatial_dims=2,
            dropout=dropout,
        )
    raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
