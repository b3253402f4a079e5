"""ActiveContourd: Chan-Vese refinement of the tumour label inside a band around it and within the liver."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scipy import ndimage
from skimage.segmentation import morphsnakes

from livervae.labels import LIVER, TUMOR
from livervae.transforms import ActiveContourd


def _reset_skimage() -> None:
    morphsnakes._curvop = morphsnakes._fcycle(
        [lambda u: morphsnakes.sup_inf(morphsnakes.inf_sup(u)), lambda u: morphsnakes.inf_sup(morphsnakes.sup_inf(u))]
    )


def _case(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A liver block (100 HU) holding a dark lesion (40 HU, radius 6) whose predicted mask is too small and shifted."""
    rng = np.random.default_rng(seed)
    shape = (40, 44, 36)
    grid = np.indices(shape)
    lesion = ((grid - np.array([20, 22, 18])[:, None, None, None]) ** 2).sum(axis=0) < 6**2
    liver = np.zeros(shape, bool)
    liver[5:35, 5:39, 4:32] = True
    image = np.where(liver, 100.0, -50.0) + np.where(lesion, -60.0, 0.0) + rng.normal(0, 6, shape)
    predicted = ((grid - np.array([21, 23, 18])[:, None, None, None]) ** 2).sum(axis=0) < 4**2
    label = np.where(liver, LIVER, 0).astype(np.uint8)
    label[predicted] = TUMOR
    return image.astype(np.float32), label, lesion


def test_refinement_moves_the_tumor_towards_the_lesion_within_the_band():
    image, label, lesion = _case()
    out = ActiveContourd("pred", num_iter=4, band=3)({"pred": label[None], "image": image[None]})["pred"]
    assert out.shape == (1,) + label.shape and out.dtype == label.dtype
    before = 2 * (lesion & (label == TUMOR)).sum() / (lesion.sum() + (label == TUMOR).sum())
    after = 2 * (lesion & (out[0] == TUMOR)).sum() / (lesion.sum() + (out[0] == TUMOR).sum())
    assert after > before + 0.1
    band = ndimage.binary_dilation(label == TUMOR, np.ones((3, 3, 3)), iterations=3)
    changed = out[0] != label
    assert changed.any() and not (changed & ~band).any()
    # Nothing outside the liver changes and no tumour turns into background.
    assert np.array_equal(out[0] == 0, label == 0)


def test_equals_chan_vese_on_the_band_box():
    image, label, _ = _case(1)
    out = ActiveContourd("pred", num_iter=2, band=3, a_min=-100, a_max=250)({"pred": label[None], "image": image})
    tumour = np.argwhere(label == TUMOR)
    lo, hi = np.maximum(tumour.min(0) - 3, 0), np.minimum(tumour.max(0) + 4, label.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    _reset_skimage()
    expected = morphsnakes.morphological_chan_vese(np.clip(image[box], -100, 250), 2, label[box] == TUMOR, 1, 1, 1)
    region = ndimage.binary_dilation(label[box] == TUMOR, np.ones((7, 7, 7))) & (label[box] > 0)
    np.testing.assert_array_equal(out["pred"][0][box][region] == TUMOR, expected.astype(bool)[region])


def test_keeps_metatensor_meta_device_and_dtype():
    image, label, _ = _case(2)
    affine = torch.diag(torch.tensor([1.5, 1.5, 2.0, 1.0]))
    pred = MetaTensor(torch.from_numpy(label[None]).float(), affine=affine)
    out = ActiveContourd("pred")({"pred": pred, "image": MetaTensor(torch.from_numpy(image[None]))})["pred"]
    assert isinstance(out, MetaTensor) and out.dtype == torch.float32 and torch.equal(out.affine, affine.double())
    assert not torch.equal(out, pred) and torch.equal(pred, torch.from_numpy(label[None]).float())  # input untouched


def test_disabled_or_tumor_free_maps_are_unchanged():
    image, label, _ = _case(3)
    data = {"pred": label[None], "image": image[None]}
    assert ActiveContourd("pred", enabled=False)(data)["pred"] is data["pred"]
    liver_only = np.where(label == TUMOR, LIVER, label)[None]
    assert ActiveContourd("pred")({"pred": liver_only, "image": image[None]})["pred"] is liver_only


def test_bad_arguments_and_shapes():
    with pytest.raises(ValueError, match="band"):
        ActiveContourd("pred", band=-1)
    with pytest.raises(ValueError, match="a_min"):
        ActiveContourd("pred", a_min=10, a_max=0)
    image, label, _ = _case()
    with pytest.raises(ValueError, match="does not match"):
        ActiveContourd("pred")({"pred": label[None], "image": image[:, :-1]})
    with pytest.raises(ValueError, match="one-channel"):
        ActiveContourd("pred")({"pred": np.stack([label, label]), "image": image})
