"""Losses referenced by the bundles: segmentation + weighted VAE loss + weak supervision."""

from livervae.losses.seg_vae import SegVAELoss
from livervae.losses.weak_supervision import SeverityLoss

__all__ = ["SegVAELoss", "SeverityLoss"]
