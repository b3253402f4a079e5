"""Post-processing of predicted label maps that needs more than MONAI's transforms (active-contour refinement)."""

from livervae.active_contours.active_contour import (
    checkerboard_level_set,
    disk_level_set,
    inf_sup,
    inverse_gaussian_gradient,
    morphological_chan_vese,
    morphological_geodesic_active_contour,
    sup_inf,
)

__all__ = [
    "checkerboard_level_set",
    "disk_level_set",
    "inf_sup",
    "inverse_gaussian_gradient",
    "morphological_chan_vese",
    "morphological_geodesic_active_contour",
    "sup_inf",
]
