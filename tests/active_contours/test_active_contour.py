"""Morphological Chan-Vese and geodesic active contours in torch equal scikit-image 0.26 voxel for voxel.

Compared on random volumes, on a synthetic phantom's lesion and on a crop of the shipped real CT (3D-IRCADb-01
patient 17, read in place), in 2D and 3D, for several iteration counts, smoothing steps and dtypes; scikit-image's
module-level curvature alternation is reset before each reference call (see conftest.py).
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage

from livervae.active_contours import (
    inf_sup,
    inverse_gaussian_gradient,
    morphological_chan_vese,
    morphological_geodesic_active_contour,
    sup_inf,
)
from livervae.labels import TUMOR


def _blob_image(shape: tuple[int, ...], seed: int, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """A noisy image with a bright blob and a rough initial mask around it."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).astype(np.float64)
    centre = np.array(shape, dtype=np.float64)[:, None] * rng.uniform(0.35, 0.65, size=(len(shape), 1))
    radius = min(shape) * 0.25
    distance = np.sqrt(((grid.reshape(len(shape), -1) - centre) ** 2).sum(axis=0)).reshape(shape)
    image = (distance < radius) * 40.0 + rng.normal(0, 15, size=shape)
    init = distance < radius * rng.uniform(0.6, 1.4)
    if np.dtype(dtype).kind in "iu":
        return np.round(image).astype(dtype), init
    return image.astype(dtype), init


@pytest.mark.parametrize("shape", [(48, 40), (33, 65), (20, 24, 28), (17, 30, 66)])
@pytest.mark.parametrize("num_iter,smoothing", [(1, 1), (2, 1), (5, 0), (4, 2), (3, 3)])
def test_chan_vese_equals_scikit_image_on_random_volumes(skimage_snakes, shape, num_iter, smoothing):
    image, init = _blob_image(shape, seed=sum(shape) + num_iter)
    expected = skimage_snakes.chan_vese(image, num_iter, init, smoothing, 1, 1)
    result = morphological_chan_vese(image, num_iter, init, smoothing, 1, 1)
    assert result.dtype == np.int8 and result.shape == shape
    np.testing.assert_array_equal(result, expected)
    assert not np.array_equal(result.astype(bool), init)  # the contour moved


@pytest.mark.parametrize("dtype", [np.float64, np.int16, np.float16])
@pytest.mark.parametrize("lambdas", [(1, 1), (1, 2.5), (3, 1)])
def test_chan_vese_dtypes_and_weights(skimage_snakes, dtype, lambdas):
    image, init = _blob_image((18, 22, 26), seed=5, dtype=dtype)
    expected = skimage_snakes.chan_vese(image, 3, init, 1, *lambdas)
    np.testing.assert_array_equal(morphological_chan_vese(image, 3, init, 1, *lambdas), expected)


@pytest.mark.parametrize("init", ["checkerboard", "disk"])
@pytest.mark.parametrize("shape", [(40, 52), (16, 20, 24)])
def test_generated_level_sets(skimage_snakes, init, shape):
    image, _ = _blob_image(shape, seed=9)
    np.testing.assert_array_equal(
        morphological_chan_vese(image, 3, init, 1), skimage_snakes.chan_vese(image, 3, init, 1)
    )


def test_memory_layout_of_the_inputs_is_followed(skimage_snakes):
    # numpy sums a transposed image in another order; the float32 means (and decisions) follow it.
    image, init = _blob_image((24, 30, 36), seed=2)
    transposed, init_t = image.transpose(2, 0, 1), init.transpose(2, 0, 1)
    fortran = np.asfortranarray(image)
    for img, lvl in [(transposed, init_t), (fortran, init), (image, np.asfortranarray(init))]:
        np.testing.assert_array_equal(morphological_chan_vese(img, 3, lvl, 1), skimage_snakes.chan_vese(img, 3, lvl, 1))


@pytest.mark.parametrize("shape", [(45, 50), (18, 24, 30)])
@pytest.mark.parametrize("balloon,threshold", [(0, "auto"), (1, "auto"), (-1, 0.5), (2, 0.3)])
def test_geodesic_equals_scikit_image(skimage_snakes, shape, balloon, threshold):
    image, init = _blob_image(shape, seed=len(shape) + 3, dtype=np.float64)
    gimage = inverse_gaussian_gradient(image, alpha=50.0, sigma=1.5)
    np.testing.assert_array_equal(gimage, skimage_snakes.module.inverse_gaussian_gradient(image, 50.0, 1.5))
    for num_iter, smoothing in [(1, 1), (4, 1), (3, 2)]:
        expected = skimage_snakes.geodesic(gimage, num_iter, init, smoothing, threshold, balloon)
        result = morphological_geodesic_active_contour(gimage, num_iter, init, smoothing, threshold, balloon)
        np.testing.assert_array_equal(result, expected)


def test_sup_inf_and_inf_sup_wrappers(skimage_snakes):
    _, init = _blob_image((20, 21, 22), seed=4)
    np.testing.assert_array_equal(sup_inf(init), skimage_snakes.module.sup_inf(init.astype(np.int8)))
    np.testing.assert_array_equal(inf_sup(init), skimage_snakes.module.inf_sup(init.astype(np.int8)))


def test_batches_and_tensors(skimage_snakes):
    images, inits = zip(*[_blob_image((14, 18, 22), seed=s) for s in range(3)])
    batch = morphological_chan_vese(torch.from_numpy(np.stack(images)), 3, torch.from_numpy(np.stack(inits)), 1)
    assert isinstance(batch, torch.Tensor) and batch.dtype == torch.int8 and batch.shape == (3, 14, 18, 22)
    for item, (image, init) in enumerate(zip(images, inits)):
        np.testing.assert_array_equal(batch[item].numpy(), skimage_snakes.chan_vese(image, 3, init, 1))
    # A (B, H, W) batch of 2D images needs spatial_dims=2.
    slices = np.stack([img[7] for img in images])
    out = morphological_chan_vese(slices, 2, "checkerboard", 1, spatial_dims=2)
    for item in range(3):
        np.testing.assert_array_equal(out[item], skimage_snakes.chan_vese(slices[item], 2, "checkerboard", 1))


def test_every_call_starts_with_the_same_curvature_operator(skimage_snakes):
    # scikit-image's result after a call with an odd number of smoothing steps depends on that call; ours does not.
    image, init = _blob_image((20, 24, 28), seed=8)
    first = morphological_chan_vese(image, 3, init, 1)
    morphological_chan_vese(image, 1, init, 1)
    np.testing.assert_array_equal(morphological_chan_vese(image, 3, init, 1), first)
    np.testing.assert_array_equal(first, skimage_snakes.chan_vese(image, 3, init, 1))


def test_phantom_lesion(skimage_snakes, small_phantom):
    image, label, _ = small_phantom
    lesions, count = ndimage.label(label.array == TUMOR)
    assert count >= 1
    box = ndimage.find_objects(lesions)[int(np.argmax(np.bincount(lesions.ravel())[1:]))]
    box = tuple(slice(max(s.start - 6, 0), s.stop + 6) for s in box)
    crop = image.array[box].astype(np.float32)
    init = ndimage.binary_dilation(lesions[box] > 0, iterations=2)
    for num_iter in (2, 6):
        expected = skimage_snakes.chan_vese(crop, num_iter, init, 1)
        np.testing.assert_array_equal(morphological_chan_vese(crop, num_iter, init, 1), expected)
    gimage = inverse_gaussian_gradient(crop, alpha=100.0, sigma=1.0)
    np.testing.assert_array_equal(
        morphological_geodesic_active_contour(gimage, 4, init, 1, "auto", -1),
        skimage_snakes.geodesic(gimage, 4, init, 1, "auto", -1),
    )


@pytest.fixture(scope="module")
def real_crop(real_case):
    """A crop of the real CT around tumour 1 (HU, float32) and the tumour mask, in memory only (licence)."""
    ct = np.asanyarray(nib.load(real_case / "nifti" / "ct.nii.gz").dataobj)
    tumour = np.asanyarray(nib.load(real_case / "nifti" / "livertumor1.nii.gz").dataobj) > 0
    box = (slice(96, 184), slice(140, 234), slice(80, 116))
    return np.clip(ct[box].astype(np.float32), -100, 250), tumour[box]


@pytest.mark.parametrize("num_iter,smoothing", [(2, 1), (5, 1), (3, 2)])
def test_real_ct_crop_3d(skimage_snakes, real_crop, num_iter, smoothing):
    image, tumour = real_crop
    init = ndimage.binary_erosion(tumour, iterations=2)
    expected = skimage_snakes.chan_vese(image, num_iter, init, smoothing, 1, 1)
    result = morphological_chan_vese(image, num_iter, init, smoothing, 1, 1)
    np.testing.assert_array_equal(result, expected)
    assert result.sum() > 1000


def test_real_ct_slices_2d(skimage_snakes, real_crop):
    image, tumour = real_crop
    for k in (5, 17, 30):
        expected = skimage_snakes.chan_vese(image[:, :, k], 4, tumour[:, :, k], 1)
        np.testing.assert_array_equal(morphological_chan_vese(image[:, :, k], 4, tumour[:, :, k], 1), expected)
    gimage = inverse_gaussian_gradient(image[:, :, 17], alpha=200.0, sigma=2.0)
    np.testing.assert_array_equal(
        morphological_geodesic_active_contour(gimage, 5, tumour[:, :, 17], 1, "auto", 1),
        skimage_snakes.geodesic(gimage, 5, tumour[:, :, 17], 1, "auto", 1),
    )


def test_bad_arguments():
    image = np.zeros((8, 8, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="dimensions of the initial level set"):
        morphological_chan_vese(image, 1, np.zeros((8, 8), dtype=bool))
    with pytest.raises(ValueError, match="at least 2 voxels"):
        morphological_chan_vese(np.zeros((8, 1, 8), dtype=np.float32), 1)
    with pytest.raises(ValueError, match="2D or 3D"):
        morphological_chan_vese(np.zeros(8, dtype=np.float32), 1)
    with pytest.raises(ValueError, match="num_iter"):
        morphological_chan_vese(image, -1)
    with pytest.raises(ValueError, match="smoothing"):
        morphological_geodesic_active_contour(image, 1, smoothing=1.5)
    with pytest.raises(ValueError, match="init_level_set"):
        morphological_chan_vese(image, 1, "square")
