"""scikit-image's morphological snakes keep their curvature alternation in module state; reset it per comparison."""

from __future__ import annotations

import pytest
from skimage.segmentation import morphsnakes


def reset_skimage_curvature() -> None:
    """Restart scikit-image's SI∘IS / IS∘SI alternation at SI∘IS, as in a fresh process."""
    morphsnakes._curvop = morphsnakes._fcycle(
        [lambda u: morphsnakes.sup_inf(morphsnakes.inf_sup(u)), lambda u: morphsnakes.inf_sup(morphsnakes.sup_inf(u))]
    )


@pytest.fixture()
def skimage_snakes():
    """scikit-image's morphsnakes module with the alternation reset before each call made through it."""

    class Fresh:
        @staticmethod
        def chan_vese(*args, **kwargs):
            reset_skimage_curvature()
            return morphsnakes.morphological_chan_vese(*args, **kwargs)

        @staticmethod
        def geodesic(*args, **kwargs):
            reset_skimage_curvature()
            return morphsnakes.morphological_geodesic_active_contour(*args, **kwargs)

        module = morphsnakes

    return Fresh
