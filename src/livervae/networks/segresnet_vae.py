"""SegResNetVAE that returns one segmentation tensor at inference and its auxiliary outputs in training.

MONAI's `SegResNetVAE` returns `(seg, vae_loss)` in training and `(seg, None)` in evaluation, which breaks
sliding-window inference, MONAI Label and the bundle checks that expect one tensor. This subclass keeps
MONAI's encoder, decoder and VAE branch and changes only what `forward` returns:

- `eval()`: the segmentation logits alone (the plain SegResNet path; the VAE branch does not run).
- `train()`: a `SegResNetVAEOutput` with the logits, MONAI's unweighted VAE loss (KL-style regulariser plus
  reconstruction MSE) and, when `severity_head` is set, a per-sample tumour-severity logit from the pooled
  encoder bottleneck (the VAE branch's input), used for weak supervision (sigmoid gives [0, 1]).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from monai.networks.layers.factories import Dropout
from monai.networks.nets import SegResNetVAE
from torch import nn


class SegResNetVAEOutput(NamedTuple):
    """What the network returns in training mode."""

    seg: torch.Tensor
    vae_loss: torch.Tensor | None
    severity_logit: torch.Tensor | None


class SegResNetVAEWithHeads(SegResNetVAE):
    """MONAI SegResNetVAE with a single-tensor inference output and an optional severity head.

    Args:
        input_image_size: training patch size; every side must divide by 2 ** (len(blocks_down) - 1).
        severity_head: add a small head (pooled bottleneck → MLP → logit) predicting the
            patient's tumour severity indicator.
        vae: compute the VAE loss in training (off turns the network into a SegResNet with the same weights).
        dropout: alias of `dropout_prob`, the argument name MONAI Label sets for epistemic scoring.
        kwargs: everything else goes to `monai.networks.nets.SegResNetVAE`.
    """

    def __init__(
        self,
        input_image_size: tuple[int, ...] | list[int],
        severity_head: bool = False,
        vae: bool = True,
        dropout: float | None = None,
        **kwargs,
    ) -> None:
        if dropout is not None:
            kwargs["dropout_prob"] = dropout
        super().__init__(input_image_size=tuple(input_image_size), **kwargs)
        self.vae = vae
        if not self.vae_estimate_std:
            # MONAI builds the std head even when the std is fixed; an unused layer breaks strict DDP.
            del self.vae_fc2
        bottleneck_channels = self.init_filters * 2 ** (len(self.blocks_down) - 1)
        self.severity_head = (
            nn.Sequential(
                nn.AdaptiveAvgPool3d(1) if self.spatial_dims == 3 else nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
                nn.Linear(bottleneck_channels, 16),
                nn.ReLU(inplace=True),
                nn.Linear(16, 1),
            )
            if severity_head
            else None
        )

    def set_dropout(self, probability: float | None) -> None:
        """Switch the encoder's dropout (after the first convolution, as `dropout_prob` does) on or off.

        For networks built without dropout whose weights already exist, e.g. epistemic scoring (MC dropout) of a
        trained stage inside `TwoStageLiverTumorNet`. Dropout has no weights, so the state dict is unchanged.
        """
        self.dropout_prob = probability
        if probability is not None:
            self.dropout = Dropout[Dropout.DROPOUT, self.spatial_dims](probability)
        elif hasattr(self, "dropout"):
            del self.dropout

    def reconstruction_loss(self, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """MONAI's VAE loss (regulariser plus reconstruction MSE) of `x`, per sample, with a fixed latent draw.

        An out-of-distribution signal at inference: the VAE branch learnt to reconstruct training inputs, so
        inputs unlike them reconstruct worse. The latent noise is drawn from a generator seeded with `seed`
        (the global RNG is left untouched), so one input always gives the same number.

        Args:
            x: (B, C, *input_image_size) input in the network's training intensity range.
            seed: seed of the latent draw.
        """
        if tuple(x.shape[2:]) != tuple(self.input_image_size):
            raise ValueError(f"input of spatial size {tuple(x.shape[2:])} must equal {tuple(self.input_image_size)}")
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(seed)
            losses = [self._get_vae_loss(sample, self.encode(sample)[0]) for sample in x.split(1, dim=0)]
        return torch.stack(losses)

    def forward(self, x: torch.Tensor) -> torch.Tensor | SegResNetVAEOutput:  # type: ignore[override]
        """Segment `x`; in training mode also return the VAE loss and the severity prediction."""
        net_input = x
        bottleneck, skips = self.encode(x)
        skips.reverse()
        seg = self.decode(bottleneck, skips)
        if not self.training:
            return seg
        if self.vae and tuple(net_input.shape[2:]) != tuple(self.input_image_size):
            raise ValueError(
                f"training input of spatial size {tuple(net_input.shape[2:])} must equal the network's "
                f"input_image_size {tuple(self.input_image_size)} for the VAE branch"
            )
        vae_loss = self._get_vae_loss(net_input, bottleneck) if self.vae else None
        severity_logit = self.severity_head(bottleneck).squeeze(1) if self.severity_head is not None else None
        return SegResNetVAEOutput(seg, vae_loss, severity_logit)
