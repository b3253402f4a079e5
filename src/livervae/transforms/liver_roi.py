"""Crop to the liver's bounding box with a margin (and random jitter in training): the tumour model's view."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandomizableTransform, SpatialCrop
from monai.transforms.utils import generate_spatial_bounding_box

from livervae.errors import InputError


def liver_bounding_box(mask: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start (inclusive) and end (exclusive) voxel indices of the non-zero region of a (C, *spatial) mask."""
    start, end = generate_spatial_bounding_box(mask)
    if any(b <= a for a, b in zip(start, end)):
        raise ValueError("empty mask")
    return np.asarray(start), np.asarray(end)


def liver_crop_box(
    mask: torch.Tensor | np.ndarray,
    spacing: Sequence[float],
    margin_mm: float,
    jitter_mm: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The tumour model's view: the liver's bounding box grown by `margin_mm`, clipped to the image.

    One definition for training (`LiverROICropd`) and inference (`TwoStageLiverTumorNet`), so both crop alike.

    Args:
        mask: (C, *spatial) liver mask; every non-zero voxel counts.
        spacing: voxel size in mm per spatial axis.
        margin_mm: margin added on every side.
        jitter_mm: optional shift of each of the six faces (3 starts, then 3 ends), in mm.

    Returns:
        start (inclusive) and end (exclusive) voxel indices, a non-empty box inside the image.

    Raises:
        ValueError: the mask is empty.
    """
    spacing = np.asarray(spacing, dtype=float)
    start, end = liver_bounding_box(mask)
    margin = np.ceil(float(margin_mm) / spacing)
    shift = np.zeros(6) if jitter_mm is None else np.rint(np.asarray(jitter_mm, float) / np.tile(spacing, 2))
    shape = np.asarray(mask.shape[1:])
    roi_start = np.clip(start - margin + shift[:3], 0, shape - 1).astype(int)
    roi_end = np.clip(end + margin + shift[3:], roi_start + 1, shape).astype(int)
    return roi_start, roi_end


def _spacing(tensor: Any, fallback: Sequence[float]) -> np.ndarray:
    if isinstance(tensor, MetaTensor):
        return np.asarray(tensor.pixdim, dtype=float)[:3]
    return np.asarray(fallback, dtype=float)


class LiverROICropd(RandomizableTransform, MapTransform):
    """Crop `keys` to the bounding box of `source_key > 0` plus a margin, shifted by a random jitter.

    Args:
        keys: the arrays to crop (channel-first, same grid).
        source_key: the mask whose non-zero voxels define the liver (label 1 and 2 both count).
        margin_mm: margin added on every side, in millimetres.
        jitter_mm: each box face moves by a uniform random amount in [-jitter, +jitter] mm (training only;
            0 makes the crop deterministic), so the tumour model learns from imperfect stage-1 crops.
        prob: probability of applying the jitter.
    """

    def __init__(
        self,
        keys: KeysCollection,
        source_key: str = "label",
        margin_mm: float = 10.0,
        jitter_mm: float = 0.0,
        prob: float = 1.0,
    ) -> None:
        MapTransform.__init__(self, keys)
        RandomizableTransform.__init__(self, prob)
        self.source_key = source_key
        self.margin_mm = float(margin_mm)
        self.jitter_mm = float(jitter_mm)
        self._jitter = np.zeros(6)

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self._jitter = self.R.uniform(-1.0, 1.0, size=6) if self._do_transform else np.zeros(6)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        source = d[self.source_key]
        spacing = _spacing(source, (1.0, 1.0, 1.0))
        self.randomize()
        try:
            roi_start, roi_end = liver_crop_box(source, spacing, self.margin_mm, self._jitter * self.jitter_mm)
        except ValueError:
            name = getattr(source, "meta", {}).get("filename_or_obj", self.source_key)
            raise InputError(name, "empty liver: nothing to crop around") from None
        cropper = SpatialCrop(roi_start=roi_start.tolist(), roi_end=roi_end.tolist())
        for key in self.key_iterator(d):
            d[key] = cropper(d[key])
        return d
