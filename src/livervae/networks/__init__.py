"""Networks referenced by the bundles: one definition each."""

from livervae.networks.segresnet_vae import SegResNetVAEOutput, SegResNetVAEWithHeads

__all__ = ["SegResNetVAEOutput", "SegResNetVAEWithHeads"]
