"""MONAI-style dictionary transforms LiverVAE needs beyond MONAI's own."""

from livervae.transforms.active_contour import ActiveContourd
from livervae.transforms.liver_roi import LiverROICropd, liver_bounding_box
from livervae.transforms.postprocess import RemoveSmallTumoursd
from livervae.transforms.severity import Severityd

__all__ = ["ActiveContourd", "LiverROICropd", "RemoveSmallTumoursd", "Severityd", "liver_bounding_box"]
