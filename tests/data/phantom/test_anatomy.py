"""`livervae.data.phantom.anatomy`: organs on the right sides in world coordinates, lungs above the liver."""

from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy import ndimage

from livervae.labels import LIVER


def _world(volume, ijk: np.ndarray) -> np.ndarray:
    """World (RAS mm) coordinates of voxel indices (n, 3)."""
    return nib.affines.apply_affine(volume.affine, ijk)


def _centroid_mm(volume, mask: np.ndarray) -> np.ndarray:
    return _world(volume, np.array(ndimage.center_of_mass(mask))[None, :])[0]


def test_anatomy_sides_in_world_coordinates(cohort: list[tuple]) -> None:
    # nibabel's RAS+: +x is the patient's right; LPS storage walks to the left as i grows.
    assert nib.aff2axcodes(np.diag([-1.0, -1.0, 1.0, 1.0])) == ("L", "P", "S")
    for image, label, truth, masks in cohort:
        body = _centroid_mm(image, masks["body"])
        liver = _centroid_mm(image, label.array >= LIVER)
        np.testing.assert_allclose(liver, truth.liver_centroid_mm, atol=1e-2)
        assert liver[0] > body[0] + 20.0  # liver on the patient's right
        assert _centroid_mm(image, masks["spleen"])[0] < body[0] - 40.0  # spleen on the left
        assert _centroid_mm(image, masks["kidney_right"])[0] > body[0] > _centroid_mm(image, masks["kidney_left"])[0]
        assert _centroid_mm(image, masks["spine"])[1] < liver[1]  # spine posterior


def test_air_inside_the_body_is_lung_above_the_liver(cohort: list[tuple]) -> None:
    for image, label, truth, masks in cohort:
        inner = ndimage.binary_erosion(masks["body"], iterations=2)
        stomach = ndimage.binary_dilation(masks["stomach"], iterations=2)
        air = inner & ~stomach & (image.array < -500)
        assert air.any()
        z_air = _world(image, np.argwhere(air))[:, 2]
        assert z_air.min() > truth.liver_centroid_mm[2]
        assert image.array[masks["lungs"]].mean() < -700
