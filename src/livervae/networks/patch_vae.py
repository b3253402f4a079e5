"""A lightweight VAE for 2D liver patches, with a tumour classifier on its latent.

    patch (C, p, p)
      encoder   conv (stride 1) -> conv (stride 2): (c2, p/2, p/2); dense -> mu, log sigma^2 (latent_dim each)
      z         mu + sigma * eps in training (reparameterisation), mu in eval
      decoder   dense -> (c2, p/2, p/2) -> transpose conv (stride 2) -> transpose conv (stride 1):
                reconstruction (C channels, sigmoid) and tumour-mask logit (1 channel), plus a dense head giving the
                tumour centre (x, y) in [0, 1] of the patch
      classifier z as (latent_dim, 1, 1) -> transpose conv to (c_cls, 4, 4) -> dense -> dropout -> dense: 2 logits

`mask_mode="latent"` (the lung and pancreas VAE designs) moves the mask and the coordinates to a second decoder of
the same shape that reads the *detached* latent: the segmentation loss then trains only that decoder and never
shapes the latent, which stays purely generative (reconstruction + KL).

`forward` returns the classifier logits (B, 2), so MONAI inferers, evaluators and `verify_net_in_out` see one
tensor; `vae_forward` returns everything for pre-training; `predict` gives the probability at z = mu and its
variance over samples of z (the uncertainty).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from monai.networks.blocks import Convolution
from torch import nn

MASK_MODES = ("joint", "latent")


class PatchVAEOutput(NamedTuple):
    """What `PatchVAE.vae_forward` returns."""

    recon: torch.Tensor  # (B, C, p, p) in [0, 1]
    mask_logits: torch.Tensor  # (B, 1, p, p)
    coords: torch.Tensor  # (B, 2) tumour centre (x, y) in [0, 1]
    mu: torch.Tensor  # (B, latent_dim)
    logvar: torch.Tensor  # (B, latent_dim)
    class_logits: torch.Tensor  # (B, 2)


class _Decoder(nn.Module):
    """Dense layer to (c2, p/2, p/2), then two transpose convolutions to `out_channels` x p x p, and optionally a
    dense coordinate head on the first transpose convolution's (c1, p, p) features."""

    def __init__(self, latent_dim: int, channels: tuple[int, int], patch_size: int, out_channels: int, coords: bool):
        super().__init__()
        c1, c2 = channels
        self.half = patch_size // 2
        self.c2 = c2
        self.fc = nn.Sequential(nn.Linear(latent_dim, c2 * self.half * self.half), nn.LeakyReLU(0.1))
        self.up = Convolution(2, c2, c1, strides=2, kernel_size=3, is_transposed=True, act="LEAKYRELU", norm="BATCH")
        self.out = Convolution(2, c1, out_channels, strides=1, kernel_size=3, is_transposed=True, conv_only=True)
        self.coords = nn.Linear(c1 * patch_size * patch_size, 2) if coords else None

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.up(self.fc(z).view(-1, self.c2, self.half, self.half))
        coords = torch.sigmoid(self.coords(h.flatten(1))) if self.coords is not None else None
        return self.out(h), coords


class PatchVAE(nn.Module):
    """Patch VAE with mask/coordinate decoding and a tumour classifier on the latent.

    Args:
        patch_size: patch side p (even); the encoder ends at p/2 x p/2 (8 x 8 for 16 x 16 patches).
        in_channels: image channels of a patch.
        channels: (c1, c2) channels of the two encoder convolutions (the decoder mirrors them).
        latent_dim: size of z.
        classifier_channels: channels of the classifier's transpose-convolution upsampling (to 4 x 4).
        classifier_hidden: width of the classifier's first dense layer.
        dropout: dropout probability in the classifier (also the name MONAI Label sets for epistemic scoring).
        num_classes: classifier outputs (2: non-tumour, tumour).
        mask_mode: "joint" (the VAE decoder gives the mask and coordinates) or "latent" (a second decoder on the
            detached latent does).
    """

    def __init__(
        self,
        patch_size: int = 16,
        in_channels: int = 1,
        channels: tuple[int, int] | list[int] = (16, 32),
        latent_dim: int = 32,
        classifier_channels: int = 16,
        classifier_hidden: int = 64,
        dropout: float = 0.3,
        num_classes: int = 2,
        mask_mode: str = "joint",
    ) -> None:
        super().__init__()
        if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 4 or patch_size % 2:
            raise ValueError(f"patch_size must be an even integer >= 4, got {patch_size!r}")
        if mask_mode not in MASK_MODES:
            raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")
        if len(channels) != 2:
            raise ValueError(f"channels must be two numbers (c1, c2), got {channels!r}")
        c1, c2 = (int(c) for c in channels)
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.latent_dim = latent_dim
        self.mask_mode = mask_mode
        self.encoder_frozen = False
        half = patch_size // 2
        self.encoder = nn.Sequential(
            Convolution(2, in_channels, c1, strides=1, kernel_size=3, act="LEAKYRELU", norm="BATCH"),
            Convolution(2, c1, c2, strides=2, kernel_size=3, act="LEAKYRELU", norm="BATCH"),
            nn.Flatten(),
        )
        self.fc_mu = nn.Linear(c2 * half * half, latent_dim)
        self.fc_logvar = nn.Linear(c2 * half * half, latent_dim)
        joint = mask_mode == "joint"
        self.decoder = _Decoder(latent_dim, (c1, c2), patch_size, in_channels + (1 if joint else 0), coords=joint)
        self.seg_decoder = None if joint else _Decoder(latent_dim, (c1, c2), patch_size, 1, coords=True)
        self.classifier = nn.Sequential(
            Convolution(
                2,
                latent_dim,
                classifier_channels,
                strides=4,
                kernel_size=4,
                padding=0,
                output_padding=0,
                is_transposed=True,
                act="LEAKYRELU",
                norm=None,
            ),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(classifier_channels * 16, classifier_hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(classifier_hidden, num_classes),
        )

    def _check(self, x: torch.Tensor) -> None:
        expected = (self.in_channels, self.patch_size, self.patch_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"PatchVAE expects patches of shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}"
            )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mu and log sigma^2 of q(z | x)."""
        self._check(x)
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h).clamp(-10.0, 10.0)

    @staticmethod
    def reparameterise(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps, eps ~ N(0, I)."""
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """Classifier logits (B, num_classes) from latents (B, latent_dim)."""
        return self.classifier(z.view(z.shape[0], self.latent_dim, 1, 1))

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction in [0, 1], tumour-mask logits and tumour centre (x, y) from latents."""
        out, coords = self.decoder(z)
        recon = torch.sigmoid(out[:, : self.in_channels])
        if self.seg_decoder is None:
            mask_logits = out[:, self.in_channels :]
        else:
            mask_logits, coords = self.seg_decoder(z.detach())
        assert coords is not None
        return recon, mask_logits, coords

    def vae_forward(self, x: torch.Tensor) -> PatchVAEOutput:
        """Everything, for pre-training: z is sampled in training mode and the mean in eval mode."""
        mu, logvar = self.encode(x)
        z = self.reparameterise(mu, logvar) if self.training else mu
        recon, mask_logits, coords = self.decode(z)
        return PatchVAEOutput(recon, mask_logits, coords, mu, logvar, self.classify(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classifier logits (B, 2) of patches (B, C, p, p): z sampled in training, z = mu in eval."""
        mu, logvar = self.encode(x)
        return self.classify(self.reparameterise(mu, logvar) if self.training else mu)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, n_samples: int = 16) -> dict[str, torch.Tensor]:
        """Tumour probability with its uncertainty, mask and centre, in eval mode.

        The probability is the classifier's at z = mu (what `forward` gives in eval mode and what validation
        scores); the uncertainty is the variance of the probability over `n_samples` draws z ~ q(z | x) (0 with
        `n_samples` below 2). Mask and centre come from z = mu.

        Returns:
            "probability" (B,), "variance" (B,), "mask" (B, 1, p, p) in [0, 1], "coords" (B, 2).
        """
        was_training = self.training
        self.eval()
        try:
            mu, logvar = self.encode(x)
            probability = torch.softmax(self.classify(mu), dim=1)[:, 1]
            if n_samples > 1:
                draws = [
                    torch.softmax(self.classify(self.reparameterise(mu, logvar)), dim=1)[:, 1] for _ in range(n_samples)
                ]
                variance = torch.stack(draws).var(dim=0, unbiased=False)
            else:
                variance = torch.zeros_like(probability)
            _, mask_logits, coords = self.decode(mu)
            return {
                "probability": probability,
                "variance": variance,
                "mask": torch.sigmoid(mask_logits),
                "coords": coords,
            }
        finally:
            self.train(was_training)

    def _encoder_modules(self) -> list[nn.Module]:
        return [self.encoder, self.fc_mu, self.fc_logvar]

    def freeze_encoder(self, frozen: bool = True) -> "PatchVAE":
        """Fix (or free) the encoder and its mu/log-variance layers for the classifier stage: no gradients, and
        its batch norms stay in eval mode (their pre-training statistics) when the rest trains. Training the
        classifier on a fixed latent is the study's design and a third of the cost of fine-tuning the encoder."""
        self.encoder_frozen = bool(frozen)
        for module in self._encoder_modules():
            module.requires_grad_(not frozen)
        return self.train(self.training)

    def train(self, mode: bool = True) -> "PatchVAE":
        super().train(mode)
        if getattr(self, "encoder_frozen", False):
            for module in self._encoder_modules():
                module.eval()
        return self

    def vae_parameters(self) -> list[nn.Parameter]:
        """Parameters trained in VAE pre-training: encoder and decoder(s), not the classifier."""
        skip = {id(p) for p in self.classifier.parameters()}
        return [p for p in self.parameters() if id(p) not in skip]

    def classifier_parameters(self, train_encoder: bool = False) -> list[nn.Parameter]:
        """Parameters trained in the classifier stage: the classifier, plus the encoder (and mu/logvar layers)
        when fine-tuning it."""
        params = list(self.classifier.parameters())
        if train_encoder:
            params += [*self.encoder.parameters(), *self.fc_mu.parameters(), *self.fc_logvar.parameters()]
        return params
