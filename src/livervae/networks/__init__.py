"""Networks referenced by the bundles: one definition each."""

from livervae.networks.patch_vae import PatchVAE, PatchVAEOutput
from livervae.networks.segresnet_vae import SegResNetVAEOutput, SegResNetVAEWithHeads
from livervae.networks.unet_baselines import BASELINES, build_unet_baseline

__all__ = [
    "BASELINES",
    "PatchVAE",
    "PatchVAEOutput",
    "SegResNetVAEOutput",
    "SegResNetVAEWithHeads",
    "build_unet_baseline",
]
