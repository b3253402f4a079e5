"""Put a predicted label map or probability map back on the source CT's grid without MONAI's full-resolution
coordinate grid."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import Invertd, MapTransform, Transform

# The preprocessing this fast path inverts exactly: orientation, then resampling with border padding.
_INVERTIBLE = ("Orientation", "SpatialResample")


def axis_aligned_coordinates(image: MetaTensor, tolerance: float = 1e-4) -> tuple[list[int], list[np.ndarray]] | None:
    """For each source axis, the preprocessed axis it maps to and the preprocessed coordinate of every voxel.

    Applies when `image` went through exactly Orientation and SpatialResample (border padding): the source voxel
    `o` then sits at preprocessed coordinate `inv(A_pre) @ A_src @ o`, and when that matrix is a signed,
    scaled permutation (MONAI's resampling keeps the source's direction cosines, so it is for any Spacingd
    output) nearest-neighbour resampling is separable, one index vector per axis.

    Returns:
        (axes, coordinates), or None when the preprocessing or the geometry is outside that case.
    """
    ops = getattr(image, "applied_operations", [])
    if tuple(op.get("class") for op in ops) != _INVERTIBLE:
        return None
    orientation, resample = ops
    extra = resample.get("extra_info", {})
    if extra.get("padding_mode") != "border" or extra.get("align_corners") not in (False, None):
        return None
    source_affine = np.asarray(orientation["extra_info"]["original_affine"], dtype=np.float64)
    source_shape = [int(n) for n in orientation["orig_size"]]
    mapping = np.linalg.inv(np.asarray(image.affine, dtype=np.float64)) @ source_affine
    linear = mapping[:3, :3]
    scale = np.abs(linear).max()
    axes = []
    for source_axis in range(3):
        column = np.abs(linear[:, source_axis])
        target = int(column.argmax())
        if np.delete(column, target).max(initial=0.0) > tolerance * scale:
            return None  # the grids are rotated against each other
        axes.append(target)
    if sorted(axes) != [0, 1, 2]:
        return None
    coordinates = [
        linear[target, source_axis] * np.arange(source_shape[source_axis]) + mapping[target, 3]
        for source_axis, target in enumerate(axes)
    ]
    return axes, coordinates


def axis_aligned_lookup(image: MetaTensor, tolerance: float = 1e-4) -> tuple[list[int], list[np.ndarray]] | None:
    """`axis_aligned_coordinates` rounded to the nearest preprocessed voxel (border padding clamps to the edge).

    A coordinate exactly half-way between two voxels (e.g. spacing ratio 1.25) may round the other way than
    MONAI's float32 resampling does; both voxels are then equally near.
    """
    found = axis_aligned_coordinates(image, tolerance)
    if found is None:
        return None
    axes, coordinates = found
    shape = image.shape[1:]
    indices = [np.clip(np.rint(c), 0, shape[t] - 1).astype(np.intp) for c, t in zip(coordinates, axes)]
    return axes, indices


def to_source_grid(label: torch.Tensor, lookup: tuple[list[int], list[np.ndarray]]) -> np.ndarray:
    """Gather a channel-first label map (C, X, Y, Z) onto the source grid as uint8, one index vector per axis."""
    axes, indices = lookup
    array = label.detach().cpu().numpy()
    if array.dtype != np.uint8:
        array = array.astype(np.uint8)  # label values 0..255; the float copy at source size is what is avoided
    array = np.transpose(array, (0, *[axis + 1 for axis in axes]))
    return array[(slice(None), *np.ix_(*indices))]


def to_source_grid_linear(values: torch.Tensor, found: tuple[list[int], list[np.ndarray]]) -> np.ndarray:
    """Resample a channel-first float map (C, X, Y, Z) onto the source grid with (separable) linear interpolation.

    Linear interpolation on a grid is separable, so it is done one axis at a time with two gathers and a blend
    each, the axis that grows the array least first (the map stays small for longest); coordinates outside the
    map take its edge value (border padding, as the preprocessing pads).

    Args:
        values: the map on the preprocessed grid.
        found: `axis_aligned_coordinates` of the preprocessed image.

    Returns:
        float32 array (C, *source shape).
    """
    axes, coordinates = found
    array = values.detach().float().cpu().permute(0, *[axis + 1 for axis in axes])
    for axis in sorted(range(3), key=lambda a: len(coordinates[a]) / array.shape[a + 1]):
        dim, size = axis + 1, array.shape[axis + 1]
        position = torch.from_numpy(np.clip(coordinates[axis], 0.0, size - 1)).float()
        low = position.floor().long()
        high = (low + 1).clamp_(max=size - 1)
        shape = [1] * array.ndim
        shape[dim] = -1
        weight = (position - low).reshape(shape)
        array = torch.lerp(array.index_select(dim, low), array.index_select(dim, high), weight)
    return array.contiguous().numpy()


def probabilities_to_source_grid(
    values: torch.Tensor, image: MetaTensor, transform: Transform, orig_key: str = "image"
) -> np.ndarray:
    """A channel-first float map on the preprocessed grid of `image`, linearly resampled to the source CT's grid.

    Uses `to_source_grid_linear` after Orientationd + Spacingd on axis-aligned grids, otherwise MONAI's `Invertd`
    with linear interpolation.

    Returns:
        float32 array (C, *source shape) in the source file's voxel order.
    """
    if tuple(values.shape[1:]) != tuple(image.shape[1:]):
        raise ValueError(f"map of shape {tuple(values.shape)} is not on the preprocessed grid {tuple(image.shape)}")
    found = axis_aligned_coordinates(image)
    if found is not None:
        return to_source_grid_linear(values, found)
    inverted = Invertd("pred", transform=transform, orig_keys=orig_key, nearest_interp=False, to_tensor=True)(
        {"pred": MetaTensor(values.detach().cpu().float(), meta=dict(image.meta)), orig_key: image}
    )["pred"]
    return np.asarray(inverted.detach().cpu().numpy(), dtype=np.float32)


class SourceGridLabeld(MapTransform):
    """Invert the preprocessing of a label map with nearest neighbour, on the source CT's grid, as uint8.

    Gives what `Invertd(keys, transform, orig_keys, nearest_interp=True)` gives after Orientationd + Spacingd,
    with a separable index lookup instead of MONAI's resampling. That resampling builds a float coordinate grid
    and a float copy of the map at the source size (about 60 bytes per source voxel in all: a 512 × 512 × 1000
    CT peaked at 15 GiB of RAM); the lookup writes the uint8 map directly. Any other preprocessing, or grids
    rotated against each other, go through `Invertd` unchanged.

    Args:
        keys: label map keys (on the preprocessed grid).
        transform: the preprocessing to invert (for the `Invertd` fallback).
        orig_keys: the preprocessed image whose applied operations describe the grid change.
    """

    def __init__(
        self, keys: KeysCollection, transform: Transform, orig_keys: str = "image", allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.orig_keys = orig_keys
        self.fallback = Invertd(keys, transform=transform, orig_keys=orig_keys, nearest_interp=True, to_tensor=True)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image = d[self.orig_keys]
        lookup = axis_aligned_lookup(image) if isinstance(image, MetaTensor) else None
        if lookup is None:
            return self.fallback(d)
        source_affine = torch.as_tensor(image.applied_operations[0]["extra_info"]["original_affine"])
        meta = {k: v for k, v in image.meta.items() if k not in ("affine", "original_affine")}
        for key in self.key_iterator(d):
            if tuple(d[key].shape[1:]) != tuple(image.shape[1:]):
                raise ValueError(f"{key} has shape {tuple(d[key].shape)}, the preprocessed image {tuple(image.shape)}")
            label = torch.from_numpy(np.ascontiguousarray(to_source_grid(d[key], lookup)))
            d[key] = MetaTensor(label, affine=source_affine.clone(), meta=dict(meta))
        return d
