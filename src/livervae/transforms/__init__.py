"""MONAI-style dictionary transforms LiverVAE needs beyond MONAI's own."""

from livervae.transforms.active_contour import ActiveContourd
from livervae.transforms.intensity import LiverReferencedIntensityd
from livervae.transforms.liver_roi import LiverROICropd, liver_bounding_box
from livervae.transforms.morphology import BinaryClosingd, binary_closing
from livervae.transforms.patch_targets import PatchTargetsd, tumor_centre, tumor_centres
from livervae.transforms.postprocess import RemoveSmallTumorsd
from livervae.transforms.severity import Severityd
from livervae.transforms.source_grid import SourceGridLabeld
from livervae.transforms.stage_one import StageOneLiverd
from livervae.transforms.uncertainty import (
    SourceGridProbabilityd,
    StageProbabilitiesd,
    UncertaintyMapsd,
)

__all__ = [
    "ActiveContourd",
    "BinaryClosingd",
    "LiverROICropd",
    "LiverReferencedIntensityd",
    "PatchTargetsd",
    "RemoveSmallTumorsd",
    "Severityd",
    "SourceGridLabeld",
    "SourceGridProbabilityd",
    "StageOneLiverd",
    "StageProbabilitiesd",
    "UncertaintyMapsd",
    "binary_closing",
    "liver_bounding_box",
    "tumor_centre",
    "tumor_centres",
]
