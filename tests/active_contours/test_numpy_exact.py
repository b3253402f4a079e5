"""numpy's arithmetic in torch: pairwise masked sums, gradients and the 40th percentile equal numpy's bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from livervae.active_contours.inputs import as_image
from livervae.active_contours.numpy_exact import (
    MaskedSums,
    exact_sqrt,
    gradient_axis,
    percentile40,
    percentile40_on_device,
)


@pytest.mark.parametrize("shape", [(2, 3), (7, 3), (128, 128), (100, 37), (4, 33, 65), (3, 130, 131), (64, 64, 64)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int16])
def test_masked_sums_equal_numpy(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    # Values of very different magnitudes make the summation order visible in float32.
    scale = 0.05 if dtype == np.float16 else 50  # float16 sums of 260k values overflow otherwise
    image = (rng.standard_cauchy(size=shape) * scale).clip(-6e4, 6e4).astype(dtype)
    mask = rng.random(image.shape) > 0.4
    batch = as_image(image, spatial_dims=image.ndim)
    sums = MaskedSums(batch)
    inside, outside = sums.sums(torch.from_numpy(mask)[None], fresh=True, level_strides=None)
    u = mask.astype(np.int8)
    assert inside[0] == (image * u).sum() and type(inside[0]) is type((image * u).sum())
    assert outside[0] == (image * (1 - u)).sum()


def test_masked_sums_in_the_order_of_a_transposed_image():
    rng = np.random.default_rng(0)
    image = (rng.standard_cauchy(size=(40, 50, 60)) * 30).astype(np.float32).transpose(1, 2, 0)
    mask = rng.random(image.shape) > 0.5
    sums = MaskedSums(as_image(image, None))
    # Before the first smoothing step u keeps the level set's layout, here C order.
    inside, outside = sums.sums(torch.from_numpy(mask)[None], fresh=False, level_strides=(3000, 60, 1))
    assert inside[0] == (image * np.int8(mask > 0)).sum()
    assert outside[0] == (image * (1 - np.int8(mask > 0))).sum()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_axis_equals_numpy(dtype):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 7, 9)).astype(dtype)
    tensor = torch.from_numpy(x)[None]
    for axis, expected in enumerate(np.gradient(x)):
        assert np.array_equal(gradient_axis(tensor, axis + 1)[0].numpy(), expected)


@pytest.mark.parametrize("n", [2, 3, 10, 101, 1000])
def test_percentile40_equals_numpy(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(2, n)).astype(np.float32)
    # The CPU path asks numpy; the device path (order statistics + numpy's interpolation) is checked on the CPU too.
    for values in (
        percentile40(torch.from_numpy(x), np.dtype(np.float32)),
        percentile40_on_device(torch.from_numpy(x), np.dtype(np.float32)),
    ):
        for row, value in zip(x, values):
            assert value == np.percentile(row, 40) and value.dtype == np.percentile(row, 40).dtype


def test_exact_sqrt_is_correctly_rounded():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1e6, size=100_000)
    assert np.array_equal(exact_sqrt(torch.from_numpy(x)).numpy(), np.sqrt(x))
