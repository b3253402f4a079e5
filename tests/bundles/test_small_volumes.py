"""Training crops never fail on a volume smaller than the patch: each bundle pads before it samples."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from monai.bundle import ConfigParser

from livervae.bundle import LIVER_BUNDLE, TUMOR_BUNDLE, bundle_root


def _tiny_case(folder):
    """A 24 × 20 × 8 CT at 2 mm (smaller than every patch size) with a liver block holding a tumour."""
    image = np.full((24, 20, 8), -80.0, dtype=np.float32)
    label = np.zeros(image.shape, dtype=np.uint8)
    image[4:20, 4:16, 1:7] = 60.0
    label[4:20, 4:16, 1:7] = 1
    image[8:12, 8:12, 3:5] = 10.0
    label[8:12, 8:12, 3:5] = 2
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    paths = {}
    for key, array in (("image", image), ("label", label)):
        paths[key] = str(folder / f"{key}.nii.gz")
        nib.save(nib.Nifti1Image(array, affine), paths[key])
    return paths


@pytest.mark.parametrize("name", [LIVER_BUNDLE, TUMOR_BUNDLE])
def test_training_patches_have_the_patch_size_on_a_volume_smaller_than_the_patch(name, tmp_path):
    parser = ConfigParser()
    parser.read_config(str(bundle_root(name) / "configs" / "train.json"))
    parser["bundle_root"] = str(bundle_root(name))
    patch = parser["patch_size"]
    transform = parser.get_parsed_content("train#preprocessing")
    samples = transform({**_tiny_case(tmp_path), "severity": 0.5})
    assert len(samples) == parser["num_samples"]
    for sample in samples:
        assert list(sample["image"].shape[1:]) == list(patch) and sample["label"].shape == sample["image"].shape
        assert sample["label"].max() > 0  # the case's foreground is inside the padded patch
