"""Initial level sets: scikit-image's checkerboard and disk, and user arrays binarised and broadcast over a batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.segmentation import morphsnakes

from livervae.active_contours import checkerboard_level_set, disk_level_set
from livervae.active_contours.inputs import as_image
from livervae.active_contours.level_sets import as_level_set


@pytest.mark.parametrize("shape", [(40, 52), (16, 20, 24), (7, 9, 11)])
def test_generated_level_sets_equal_scikit_image(shape):
    for size in (1, 4, 5):
        assert np.array_equal(checkerboard_level_set(shape, size), morphsnakes.checkerboard_level_set(shape, size))
    assert np.array_equal(disk_level_set(shape), morphsnakes.disk_level_set(shape))
    for center, radius in [((5,) * len(shape), 7.5), ((2.5,) * len(shape), 3.0)]:
        expected = morphsnakes.disk_level_set(shape, center=center, radius=radius)
        assert np.array_equal(disk_level_set(shape, center=center, radius=radius), expected)


def test_arrays_are_binarised_and_broadcast_over_the_batch():
    image = as_image(np.zeros((3, 6, 7, 8), dtype=np.float32), None)
    init = np.full((6, 7, 8), -1.0)
    init[2:4, 2:5, 3:6] = 0.5
    mask, strides = as_level_set(init, image)
    assert mask.dtype == torch.bool and mask.shape == (3, 6, 7, 8) and int(mask[1].sum()) == 2 * 3 * 3
    assert strides == init.strides
    batched, _ = as_level_set(torch.from_numpy(np.stack([init > 0] * 3)), image)
    assert torch.equal(batched, mask)


def test_mismatched_or_unknown_level_sets_are_refused():
    image = as_image(np.zeros((6, 7, 8), dtype=np.float32), None)
    with pytest.raises(ValueError, match="dimensions of the initial level set"):
        as_level_set(np.zeros((6, 7, 9)), image)
    with pytest.raises(ValueError, match="not in"):
        as_level_set("ellipse", image)
