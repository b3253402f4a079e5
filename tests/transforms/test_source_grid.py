"""`SourceGridLabeld` gives exactly what MONAI's `Invertd` gives, on the real CT, a phantom and odd geometries, and
`probabilities_to_source_grid` what `Invertd` gives with linear interpolation."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, Invertd, LoadImaged, Orientationd, Spacingd, SpatialPadd
from scipy import ndimage

from livervae.transforms import SourceGridLabeld
from livervae.transforms.source_grid import (
    axis_aligned_coordinates,
    axis_aligned_lookup,
    probabilities_to_source_grid,
)


def _preprocessing(pixdim, extra=()):
    return Compose(
        [
            LoadImaged(keys="image", image_only=True),
            EnsureChannelFirstd(keys="image"),
            Orientationd(keys="image", axcodes="RAS"),
            Spacingd(keys="image", pixdim=pixdim, mode="bilinear"),
            *extra,
        ]
    )


def _label_on(image: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A 0/1/2 map with blobs and single-voxel specks on the preprocessed grid (edges matter for rounding)."""
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.normal(size=image.shape[1:]), 2.0)
    label = (noise > 0.02).astype(np.float32) + (noise > 0.08)
    specks = rng.random(image.shape[1:]) < 0.01
    label[specks] = 2
    # like the network output: a MetaTensor on the preprocessed grid
    return MetaTensor(torch.from_numpy(label[None]).to(torch.float32), affine=image.affine, meta=dict(image.meta))


def _compare(path, pixdim, extra=(), expect_fast=True):
    preprocessing = _preprocessing(pixdim, extra)
    data = preprocessing({"image": str(path)})
    data["pred"] = _label_on(data["image"])
    reference = Invertd("pred", transform=preprocessing, orig_keys="image", nearest_interp=True, to_tensor=True)
    expected = reference(dict(data))["pred"]
    assert (axis_aligned_lookup(data["image"]) is not None) == expect_fast
    got = SourceGridLabeld("pred", transform=preprocessing)(dict(data))["pred"]
    assert tuple(got.shape) == tuple(expected.shape)
    differ = got.numpy().astype(np.uint8) != expected.numpy().astype(np.uint8)
    if expect_fast:
        # Only voxels exactly half-way between two preprocessed voxels may round the other way.
        _, coordinates = axis_aligned_coordinates(data["image"])
        ties = [np.abs(np.abs(c - np.floor(c)) - 0.5) < 1e-6 for c in coordinates]
        on_tie = ties[0][:, None, None] | ties[1][None, :, None] | ties[2][None, None, :]
        differ &= ~on_tie[None]
    assert not differ.any()
    assert np.allclose(np.asarray(got.affine), np.asarray(expected.affine))
    return got


def _nifti(tmp_path, affine, shape=(37, 29, 23), seed=1):
    array = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


def test_real_ct_matches_invertd_exactly_as_uint8(real_case):
    got = _compare(real_case / "nifti" / "ct.nii.gz", (2.0, 2.0, 2.0))
    assert got.dtype == torch.uint8 and tuple(got.shape) == (1, 512, 512, 119)


@pytest.mark.parametrize(
    "affine",
    [
        np.diag([-1.37, -1.37, 2.0, 1.0]),  # LPS-stored phantom-like grid, flipped in x and y
        np.array([[0, 0, 2.5, 10.0], [0.8, 0, 0, -4.0], [0, -0.8, 0, 7.0], [0, 0, 0, 1]]),  # permuted axes
    ],
)
@pytest.mark.parametrize("pixdim", [(2.0, 2.0, 2.0), (1.5, 1.5, 3.0), (0.5, 0.6, 1.1)])
def test_axis_aligned_grids_match_invertd(tmp_path, affine, pixdim):
    _compare(_nifti(tmp_path, affine), pixdim)


def test_oblique_grids_take_the_fast_path_and_other_preprocessing_falls_back(tmp_path):
    angle = np.deg2rad(10)
    oblique = np.array(
        [[np.cos(angle), -np.sin(angle), 0, 0], [np.sin(angle), np.cos(angle), 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 1]]
    )
    _compare(_nifti(tmp_path, oblique), (2.0, 2.0, 2.0))  # Spacingd keeps the direction cosines
    padded = [SpatialPadd(keys="image", spatial_size=(64, 64, 64))]
    _compare(_nifti(tmp_path, np.diag([1.0, 1.0, 2.0, 1.0])), (2.0, 2.0, 2.0), padded, expect_fast=False)


def test_a_label_on_another_grid_is_refused(tmp_path):
    preprocessing = _preprocessing((2.0, 2.0, 2.0))
    data = preprocessing({"image": str(_nifti(tmp_path, np.eye(4)))})
    data["pred"] = MetaTensor(torch.zeros((1, 5, 5, 5)))
    with pytest.raises(ValueError, match="pred has shape"):
        SourceGridLabeld("pred", transform=preprocessing)(data)


def _probabilities_on(image: torch.Tensor, seed: int = 0) -> MetaTensor:
    """Smooth two-channel maps in [0, 1] with sharp spots, on the preprocessed grid."""
    rng = np.random.default_rng(seed)
    maps = np.stack([ndimage.gaussian_filter(rng.random(image.shape[1:]), 1.5) for _ in range(2)])
    maps[:, rng.random(image.shape[1:]) < 0.01] = 1.0
    return MetaTensor(torch.from_numpy(maps.astype(np.float32)), affine=image.affine, meta=dict(image.meta))


def _compare_linear(path, pixdim, extra=(), expect_fast=True):
    preprocessing = _preprocessing(pixdim, extra)
    data = preprocessing({"image": str(path)})
    data["pred"] = _probabilities_on(data["image"])
    reference = Invertd("pred", transform=preprocessing, orig_keys="image", nearest_interp=False, to_tensor=True)
    expected = reference(dict(data))["pred"].numpy()
    assert (axis_aligned_coordinates(data["image"]) is not None) == expect_fast
    got = probabilities_to_source_grid(data["pred"], data["image"], preprocessing)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=2e-5)


@pytest.mark.parametrize(
    "affine",
    [
        np.diag([-1.37, -1.37, 2.0, 1.0]),
        np.array([[0, 0, 2.5, 10.0], [0.8, 0, 0, -4.0], [0, -0.8, 0, 7.0], [0, 0, 0, 1]]),
    ],
)
@pytest.mark.parametrize("pixdim", [(2.0, 2.0, 2.0), (0.5, 0.6, 1.1)])
def test_probabilities_are_resampled_linearly_as_invertd_does(tmp_path, affine, pixdim):
    _compare_linear(_nifti(tmp_path, affine), pixdim)


def test_probabilities_of_other_preprocessing_go_through_invertd(tmp_path):
    padded = [SpatialPadd(keys="image", spatial_size=(64, 64, 64))]
    _compare_linear(_nifti(tmp_path, np.diag([1.0, 1.0, 2.0, 1.0])), (2.0, 2.0, 2.0), padded, expect_fast=False)


def test_probabilities_on_another_grid_are_refused(tmp_path):
    preprocessing = _preprocessing((2.0, 2.0, 2.0))
    data = preprocessing({"image": str(_nifti(tmp_path, np.eye(4)))})
    with pytest.raises(ValueError, match="not on the preprocessed grid"):
        probabilities_to_source_grid(torch.zeros((2, 5, 5, 5)), data["image"], preprocessing)
