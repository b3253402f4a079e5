"""inverse_gaussian_gradient equals scikit-image's (scipy's Gaussian gradient magnitude) exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.segmentation import inverse_gaussian_gradient as skimage_igg

from livervae.active_contours import inverse_gaussian_gradient


@pytest.mark.parametrize("shape", [(40, 33), (12, 17, 21)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alpha,sigma", [(100.0, 5.0), (30.0, 1.0), (250.0, 0.5)])
def test_equals_scikit_image(shape, dtype, alpha, sigma):
    rng = np.random.default_rng(len(shape))
    image = (rng.normal(size=shape) * 40 + (np.indices(shape).sum(axis=0) > sum(shape) // 2) * 100).astype(dtype)
    result = inverse_gaussian_gradient(image, alpha=alpha, sigma=sigma)
    expected = skimage_igg(image, alpha=alpha, sigma=sigma)
    assert result.dtype == expected.dtype
    np.testing.assert_array_equal(result, expected)
    assert 0 < result.min() < result.max() <= 1.0


def test_integer_images_batches_and_tensors():
    rng = np.random.default_rng(5)
    image = rng.integers(-200, 300, size=(3, 10, 12, 14)).astype(np.int16)
    batch = inverse_gaussian_gradient(torch.from_numpy(image), alpha=50.0, sigma=1.5)
    assert isinstance(batch, torch.Tensor)
    for item in range(3):
        np.testing.assert_array_equal(batch[item].numpy(), skimage_igg(image[item], alpha=50.0, sigma=1.5))


def test_refuses_unsigned_images():
    with pytest.raises(TypeError, match="unsigned"):
        inverse_gaussian_gradient(np.zeros((8, 8), dtype=np.uint8))
