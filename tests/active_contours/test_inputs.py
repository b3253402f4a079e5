"""Inputs of the snakes: numpy or torch, batched or not, with the dtype and memory layout numpy would see."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from livervae.active_contours.inputs import as_image, as_output


def test_numpy_inputs_keep_dtype_layout_and_come_back_as_numpy():
    array = np.asfortranarray(np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4))
    image = as_image(array, None)
    assert image.np_dtype == np.float32 and image.item_strides == array.strides and not image.batched
    assert image.data.shape == (1, 2, 3, 4) and torch.equal(
        image.data[0], torch.from_numpy(np.ascontiguousarray(array))
    )
    out = as_output(image.data > 5, image)
    assert isinstance(out, np.ndarray) and out.dtype == np.int8 and out.shape == (2, 3, 4)


def test_integers_are_exact_int64_and_tensors_come_back_as_tensors():
    tensor = torch.tensor([[[-32768, 32767], [1, 2]]], dtype=torch.int16)
    image = as_image(tensor, 2)
    assert image.batched and image.np_dtype == np.int16 and image.data.dtype == torch.int64
    assert isinstance(as_output(image.data > 0, image), torch.Tensor)


@pytest.mark.parametrize(
    "shape,spatial_dims,batched",
    [((5, 6), None, False), ((4, 5, 6), None, False), ((4, 5, 6), 2, True), ((2, 3, 4, 5), None, True)],
)
def test_spatial_dimensions(shape, spatial_dims, batched):
    assert as_image(np.zeros(shape, dtype=np.float32), spatial_dims).batched is batched


def test_refusals():
    with pytest.raises(TypeError, match="dtype"):
        as_image(np.zeros((4, 4), dtype=np.complex64), None)
    with pytest.raises(ValueError, match="2D or 3D"):
        as_image(np.zeros((2, 2, 2, 2, 2), dtype=np.float32), None)
    with pytest.raises(ValueError, match="spatial_dims"):
        as_image(np.zeros((4, 4), dtype=np.float32), 4)
