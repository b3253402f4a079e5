"""Binary morphological closing of a label map, built on MONAI's torch dilation and erosion (GPU-capable)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from monai.transforms.utils_morphological_ops import dilate, erode


def binary_closing(mask: torch.Tensor, filter_size: int = 3, spatial_dims: int = 2) -> torch.Tensor:
    """Close a channel-first binary mask (C, *spatial): dilation then erosion with a square/cubic element.

    With `spatial_dims=2` on a (C, H, W, D) volume the closing is done slice by slice in the H-W plane (the axial
    slices the 2D models predict), so it never joins lesions across slices.
    """
    if filter_size % 2 == 0 or filter_size < 1:
        raise ValueError(f"filter_size must be an odd positive integer, got {filter_size}")
    x = torch.as_tensor(mask).float()
    if spatial_dims == 2 and x.ndim == 4:
        c, h, w, d = x.shape
        planes = x.permute(3, 0, 1, 2).reshape(d, c, h, w)  # slices as the batch
        closed = erode(dilate(planes, filter_size), filter_size)
        return closed.reshape(d, c, h, w).permute(1, 2, 3, 0)
    closed = erode(dilate(x.unsqueeze(0), filter_size), filter_size)
    return closed[0]


class BinaryClosingd(MapTransform):
    """Morphological closing of binary masks (fills gaps and pinholes smaller than the element).

    Args:
        keys: channel-first binary masks.
        filter_size: odd side of the structuring element in pixels.
        spatial_dims: 2 closes each axial slice of a 3D volume; 3 closes in 3D.
    """

    def __init__(
        self, keys: KeysCollection, filter_size: int = 3, spatial_dims: int = 2, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.filter_size = int(filter_size)
        self.spatial_dims = int(spatial_dims)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            value = d[key]
            closed = binary_closing(value, self.filter_size, self.spatial_dims).to(torch.as_tensor(value).dtype)
            d[key] = value.clone().copy_(closed) if hasattr(value, "copy_") else closed.numpy()
        return d
