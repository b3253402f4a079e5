"""MONAI inferers for the patch models: the patch VAE over liver patches, a 2D segmenter over slices."""

from livervae.inferers.patch import LiverPatchInferer, SliceMapInferer, stitch_patches

__all__ = ["LiverPatchInferer", "SliceMapInferer", "stitch_patches"]
