"""PackedGrid: bit-packed SI/IS, cube morphology and contour equal scikit-image / scipy / numpy voxel for voxel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.segmentation import morphsnakes

from livervae.active_contours.morphology import PackedGrid

# Widths around word boundaries (63, 64, 65, 128, 129) and small odd shapes.
SHAPES = [(5, 63), (7, 64), (9, 65), (3, 2), (33, 129), (4, 6, 63), (5, 4, 64), (3, 7, 65), (2, 2, 2), (9, 11, 130)]


def _random_masks(shape: tuple[int, ...], batch: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Smoothed noise gives blobs with real boundaries, not only salt and pepper.
    noise = ndimage.uniform_filter(rng.random((batch,) + shape), size=(1,) + (3,) * len(shape))
    return noise > rng.uniform(0.4, 0.6)


@pytest.mark.parametrize("shape", SHAPES)
def test_pack_round_trip_counts_and_voxels(shape):
    masks = _random_masks(shape, 2, seed=len(shape) * 100 + shape[-1])
    grid = PackedGrid((2,) + shape, "cpu")
    words = grid.pack(torch.from_numpy(masks))
    assert words.dtype == torch.int64 and words.numel() == grid.count
    assert np.array_equal(grid.unpack(words).numpy(), masks)
    assert grid.counts(words).tolist() == masks.reshape(2, -1).sum(axis=1).tolist()
    assert np.array_equal(grid.voxels(words).numpy(), np.flatnonzero(masks))


@pytest.mark.parametrize("shape", SHAPES)
def test_sup_inf_and_inf_sup_equal_scikit_image(shape):
    masks = _random_masks(shape, 2, seed=shape[-1])
    grid = PackedGrid((2,) + shape, "cpu")
    words = grid.pack(torch.from_numpy(masks))
    si = grid.unpack(grid.sup_inf(words)).numpy()
    is_ = grid.unpack(grid.inf_sup(words)).numpy()
    for item in range(2):
        assert np.array_equal(si[item], morphsnakes.sup_inf(masks[item].astype(np.int8)).astype(bool))
        assert np.array_equal(is_[item], morphsnakes.inf_sup(masks[item].astype(np.int8)).astype(bool))
    if masks.size > 100:
        # The operators change real masks (the comparison is not between two unchanged inputs).
        assert not np.array_equal(si, masks) and not np.array_equal(is_, masks)


@pytest.mark.parametrize("shape", SHAPES)
def test_cube_erosion_and_dilation_equal_scipy(shape):
    masks = _random_masks(shape, 1, seed=7 + shape[0])
    grid = PackedGrid((1,) + shape, "cpu")
    words = grid.pack(torch.from_numpy(masks))
    cube = np.ones((3,) * len(shape), dtype=bool)
    assert np.array_equal(grid.unpack(grid.box(words, erode=True))[0].numpy(), ndimage.binary_erosion(masks[0], cube))
    assert np.array_equal(grid.unpack(grid.box(words, erode=False))[0].numpy(), ndimage.binary_dilation(masks[0], cube))


@pytest.mark.parametrize("shape", SHAPES)
def test_contour_is_where_numpy_gradient_is_non_zero(shape):
    masks = _random_masks(shape, 1, seed=3 + shape[-1])
    grid = PackedGrid((1,) + shape, "cpu")
    expected = np.zeros(shape, dtype=bool)
    for gradient in np.gradient(masks[0].astype(np.int8)):
        expected |= gradient != 0
    contour = grid.unpack(grid.contour(grid.pack(torch.from_numpy(masks))))[0].numpy()
    assert np.array_equal(contour, expected)


def test_full_and_empty_masks_at_the_border():
    # scipy's border value 0: a full volume erodes away from its faces and IS keeps it full.
    shape = (6, 5, 70)
    grid = PackedGrid((1,) + shape, "cpu")
    full = grid.pack(torch.ones((1,) + shape, dtype=torch.bool))
    eroded = grid.unpack(grid.box(full, erode=True))[0].numpy()
    assert eroded.sum() == 4 * 3 * 68 and eroded[1:-1, 1:-1, 1:-1].all()
    assert grid.unpack(grid.inf_sup(full)).all()
    empty = grid.pack(torch.zeros((1,) + shape, dtype=torch.bool))
    assert not grid.unpack(grid.box(empty, erode=False)).any()


def test_values_and_assign_set_and_clear_bits_including_bit_63():
    shape = (3, 4, 128)
    masks = _random_masks(shape, 2, seed=11)
    grid = PackedGrid((2,) + shape, "cpu")
    words = grid.pack(torch.from_numpy(masks))
    # Voxel 63 and 127 of a row are bit 63 (the sign bit) of their words.
    voxels = torch.tensor([0, 63, 64, 127, 128 * 5 + 63, masks.size - 1])
    assert grid.values(words, voxels).tolist() == masks.reshape(-1)[voxels.numpy()].tolist()
    values = ~grid.values(words, voxels)
    grid.assign(words, voxels, values)
    expected = masks.reshape(-1).copy()
    expected[voxels.numpy()] = values.numpy()
    assert np.array_equal(grid.unpack(words).numpy().reshape(-1), expected)


def test_refuses_other_dimensions():
    with pytest.raises(ValueError, match="shape"):
        PackedGrid((4, 4), "cpu")
