"""Pre-training loss of the patch VAE: reconstruction MSE + weight x KL, plus the mask and coordinate terms.

- recon: mean squared error between the sigmoid reconstruction and the windowed patch (both in [0, 1]).
- kl: KL(q(z | x) || N(0, I)), summed over latent dimensions and averaged over the batch (`kl_weight` scales it:
  small weights keep the latent informative, 1 is the plain ELBO).
- mask: binary cross-entropy of the tumour-mask logits against the patch's tumour pixels.
- coords: squared error of the predicted tumour centre (x, y), over the patches that hold tumour only (a centre
  is undefined elsewhere); 0 when the batch has none.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from livervae.networks.patch_vae import PatchVAEOutput


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over the latent dimensions, averaged over the batch."""
    return torch.mean(-0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1))


class PatchVAELoss(nn.Module):
    """Weighted sum of the patch VAE's pre-training terms; each is also returned for logging.

    Args:
        kl_weight: weight of the KL term.
        recon_weight: weight of the reconstruction MSE.
        mask_weight: weight of the mask cross-entropy (0 trains a plain VAE).
        coord_weight: weight of the tumour-centre error.
    """

    def __init__(
        self, kl_weight: float = 1e-3, recon_weight: float = 1.0, mask_weight: float = 1.0, coord_weight: float = 1.0
    ) -> None:
        super().__init__()
        for name, value in (("kl_weight", kl_weight), ("recon_weight", recon_weight), ("mask_weight", mask_weight)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if coord_weight < 0:
            raise ValueError(f"coord_weight must be >= 0, got {coord_weight}")
        self.kl_weight = float(kl_weight)
        self.recon_weight = float(recon_weight)
        self.mask_weight = float(mask_weight)
        self.coord_weight = float(coord_weight)

    def forward(
        self,
        out: PatchVAEOutput,
        image: torch.Tensor,
        mask: torch.Tensor,
        coords: torch.Tensor,
        has_tumor: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Return {"loss", "recon", "kl", "mask", "coords"}.

        Args:
            out: `PatchVAE.vae_forward` output.
            image: (B, C, p, p) patches in [0, 1].
            mask: (B, 1, p, p) tumour pixels (0/1).
            coords: (B, 2) true tumour centres (x, y) in [0, 1].
            has_tumor: (B,) 1 where the patch holds tumour.
        """
        terms = {
            "recon": F.mse_loss(out.recon, image.float()),
            "kl": kl_divergence(out.mu, out.logvar),
            "mask": F.binary_cross_entropy_with_logits(out.mask_logits, mask.float()),
        }
        present = has_tumor.reshape(-1).to(out.coords.dtype)
        squared = (out.coords - coords.to(out.coords.dtype)).pow(2).sum(dim=1)
        terms["coords"] = (squared * present).sum() / present.sum().clamp(min=1.0)
        terms["loss"] = (
            self.recon_weight * terms["recon"]
            + self.kl_weight * terms["kl"]
            + self.mask_weight * terms["mask"]
            + self.coord_weight * terms["coords"]
        )
        return terms
