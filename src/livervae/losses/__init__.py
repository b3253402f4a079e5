"""Losses referenced by the bundles: segmentation + weighted VAE loss + weak supervision, and the patch VAE's."""

from livervae.losses.patch_vae import PatchVAELoss, kl_divergence
from livervae.losses.seg_vae import SegVAELoss
from livervae.losses.weak_supervision import SeverityLoss

__all__ = ["PatchVAELoss", "SegVAELoss", "SeverityLoss", "kl_divergence"]
