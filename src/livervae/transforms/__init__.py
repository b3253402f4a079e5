"""MONAI-style dictionary transforms LiverVAE needs beyond MONAI's own."""

from livervae.transforms.liver_roi import LiverROICropd, liver_bounding_box
from livervae.transforms.postprocess import RemoveSmallTumoursd
from livervae.transforms.severity import Severityd

__all__ = ["LiverROICropd", "RemoveSmallTumoursd", "Severityd", "liver_bounding_box"]
