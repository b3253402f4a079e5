"""`livervae.data.phantom.intensities`: measured HU order lesions, parenchyma and vessels as drawn."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from livervae.labels import LIVER, TUMOR

FULL = np.ones((3, 3, 3), dtype=bool)


def test_measured_intensities_order_lesions_parenchyma_vessels(cohort: list[tuple]) -> None:
    pooled: dict[str, list[float]] = {"hypo": [], "hyper": []}
    for image, label, truth, masks in cohort:
        hu = image.array.astype(np.float64)
        parenchyma = (label.array == LIVER) & ~masks["vessels"]
        parenchyma_mean = hu[parenchyma].mean()
        assert parenchyma_mean == pytest.approx(truth.parenchyma_hu, abs=8.0)
        assert hu[masks["vessels"]].mean() > parenchyma_mean + 30.0
        components, _ = ndimage.label(label.array == TUMOR, structure=FULL)
        inverse = np.linalg.inv(image.affine)
        for lesion in truth.lesions:
            ijk = np.rint(nib.affines.apply_affine(inverse, np.array(lesion.center_mm))).astype(int)
            difference = hu[components == components[tuple(ijk)]].mean() - parenchyma_mean
            pooled[lesion.kind].append(difference)
            # Lesions of 30+ voxels average the noise out; partial volume shrinks but never flips the contrast.
            if lesion.n_voxels >= 30:
                assert difference < 0 if lesion.kind == "hypo" else difference > 0
    assert np.mean(pooled["hypo"]) < -10.0
    assert np.mean(pooled["hyper"]) > 10.0
