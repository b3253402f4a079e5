"""Initial level sets of the morphological snakes, as scikit-image builds them (checkerboard, disk) or given."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from livervae.active_contours.inputs import ImageBatch
from livervae.active_contours.numpy_exact import exact_sqrt


def as_level_set(init: Any, image: ImageBatch) -> tuple[torch.Tensor, tuple[int, ...] | None]:
    """Binarise the initial level set (``init > 0``) as a (B, *spatial) bool tensor on the image's device.

    Returns the mask and the byte strides of one item of the user's array (None for generated level sets, which
    numpy creates C-contiguous).
    """
    device = image.data.device
    spatial = image.spatial
    if isinstance(init, str):
        if init == "checkerboard":
            mask = _checkerboard(spatial, 5, device)
        elif init in ("disk", "circle"):
            # "circle" is the pre-0.19 scikit-image name of the same level set.
            mask = _disk(spatial, None, None, device)
        else:
            raise ValueError("`init_level_set` not in ['checkerboard', 'disk', 'circle']")
        return mask.unsqueeze(0).expand(image.data.shape[0], *spatial), None
    if isinstance(init, torch.Tensor):
        tensor = init.as_tensor() if hasattr(init, "as_tensor") else init
        strides = tuple(int(s) * tensor.element_size() for s in tensor.stride())
        mask = tensor.detach().to(device) > 0
    else:
        array = np.asarray(init)
        strides = tuple(int(s) for s in array.strides)
        mask = torch.from_numpy(np.ascontiguousarray(array > 0)).to(device)
    if tuple(mask.shape) == spatial:
        return mask.unsqueeze(0).expand(image.data.shape[0], *spatial), strides
    if tuple(mask.shape) == tuple(image.data.shape) and (image.batched or mask.ndim == len(spatial)):
        return mask, strides[1:] if mask.ndim > len(spatial) else strides
    raise ValueError(
        "The dimensions of the initial level set do not match the dimensions of the image: "
        f"{tuple(mask.shape)} vs {tuple(image.data.shape) if image.batched else spatial}"
    )


def _checkerboard(shape: Sequence[int], square_size: int, device: torch.device | str | None) -> torch.Tensor:
    """`checkerboard_level_set` as a bool tensor: the parity of the sum of the square indices."""
    parity = torch.zeros(tuple(shape), dtype=torch.int64, device=device)
    for axis, size in enumerate(shape):
        view = [1] * len(shape)
        view[axis] = int(size)
        parity = parity ^ ((torch.arange(int(size), device=device) // square_size) & 1).view(view)
    return parity.bool()


def _disk(
    shape: Sequence[int],
    center: Sequence[float] | None,
    radius: float | None,
    device: torch.device | str | None,
) -> torch.Tensor:
    """`disk_level_set` as a bool tensor, with numpy's arithmetic (int or float offsets, float64 square root)."""
    if center is None:
        center = tuple(int(i) // 2 for i in shape)
    if radius is None:
        radius = min(shape) * 3.0 / 8.0
    # numpy subtracts an integer centre in int64 and any other in float64; the squares are summed axis by axis.
    dtype = torch.int64 if np.asarray(center).dtype.kind in "iu" else torch.float64
    total: torch.Tensor | None = None
    for axis, (size, c) in enumerate(zip(shape, np.asarray(center).tolist())):
        offsets = torch.arange(int(size), device=device, dtype=dtype) - torch.tensor(c, dtype=dtype, device=device)
        view = [1] * len(shape)
        view[axis] = int(size)
        square = (offsets * offsets).view(view)
        total = square if total is None else total + square
    assert total is not None
    phi = float(radius) - exact_sqrt(total.to(torch.float64))
    return (phi > 0).expand(tuple(int(s) for s in shape))


def checkerboard_level_set(image_shape: Sequence[int], square_size: int = 5) -> np.ndarray:
    """Create scikit-image's checkerboard level set: alternating 0/1 squares (cubes) of `square_size` voxels.

    Args:
        image_shape: the spatial shape.
        square_size: the side of each square, in voxels.

    Returns:
        An int8 array identical to `skimage.segmentation.checkerboard_level_set`.
    """
    return _checkerboard(image_shape, square_size, "cpu").to(torch.int8).numpy()


def disk_level_set(
    image_shape: Sequence[int], *, center: Sequence[float] | None = None, radius: float | None = None
) -> np.ndarray:
    """Create scikit-image's disk (ball) level set, by default centred with radius 3/8 of the smallest dimension.

    Args:
        image_shape: the spatial shape.
        center: the centre in voxel indices; defaults to ``shape // 2``.
        radius: the radius in voxels; defaults to ``min(shape) * 3 / 8``.

    Returns:
        An int8 array identical to `skimage.segmentation.disk_level_set`.
    """
    return _disk(image_shape, center, radius, "cpu").to(torch.int8).contiguous().numpy()
