"""Morphological active contours (morphsnakes) in torch, voxel-exact with scikit-image, for tumor refinement."""

from livervae.active_contours.active_contour import (
    inf_sup,
    morphological_chan_vese,
    morphological_geodesic_active_contour,
    sup_inf,
)
from livervae.active_contours.edges import inverse_gaussian_gradient
from livervae.active_contours.level_sets import checkerboard_level_set, disk_level_set

__all__ = [
    "checkerboard_level_set",
    "disk_level_set",
    "inf_sup",
    "inverse_gaussian_gradient",
    "morphological_chan_vese",
    "morphological_geodesic_active_contour",
    "sup_inf",
]
