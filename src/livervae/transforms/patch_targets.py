"""Training targets of a patch, computed after augmentation so they follow every flip and rotation."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.transforms import MapTransform

from livervae.data.patches import TUMOR_THRESHOLD


def tumor_centres(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The tumour pixels' centroids of a batch of (B, 1, p, p) masks as (B, 2) (x, y) in [0, 1]: x along columns
    (array axis -1), y along rows (axis -2), each (index + 0.5) / p; the patch centre (0.5, 0.5) where a mask has no
    tumour. Second value: (B,) bool, whether each mask has any tumour pixel."""
    planes = torch.as_tensor(masks).float().flatten(0, -3)
    totals = planes.sum(dim=(1, 2))
    present = totals > 0
    p_rows, p_cols = planes.shape[-2:]
    rows = (torch.arange(p_rows, dtype=torch.float32) + 0.5) / p_rows
    cols = (torch.arange(p_cols, dtype=torch.float32) + 0.5) / p_cols
    safe = totals.clamp(min=1e-12)
    y = (planes.sum(dim=2) * rows).sum(dim=1) / safe
    x = (planes.sum(dim=1) * cols).sum(dim=1) / safe
    centres = torch.stack([x, y], dim=1)
    centres[~present] = 0.5
    return centres, present


def tumor_centre(mask: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """`tumor_centres` of one (1, p, p) mask: (2,) centre and whether the mask has tumour."""
    centres, present = tumor_centres(torch.as_tensor(mask)[None])
    return centres[0], bool(present[0])


class PatchTargetsd(MapTransform):
    """From a patch's tumour `mask` (1, p, p), set "label" (0-d long: tumour when at least `tumor_threshold` of
    the pixels are tumour), "coords" (2,) the tumour centre (x, y) in [0, 1], and "has_tumor" (0-d float: any
    tumour pixel, which gates the coordinate loss).

    Args:
        keys: the mask key (one key).
        tumor_threshold: fraction of tumour pixels that makes a tumour patch.
    """

    def __init__(self, keys: str = "mask", tumor_threshold: float = TUMOR_THRESHOLD) -> None:
        super().__init__(keys)
        self.tumor_threshold = float(tumor_threshold)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            mask = torch.as_tensor(d[key]).float()
            area = float(mask.shape[-1] * mask.shape[-2])
            d["label"] = torch.tensor(int(float(mask.sum()) >= self.tumor_threshold * area - 1e-6))
            d["coords"], present = tumor_centre(mask)
            d["has_tumor"] = torch.tensor(float(present))
        return d
