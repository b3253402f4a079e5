"""Training targets of a patch, computed after augmentation so they follow every flip and rotation."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.transforms import MapTransform

from livervae.data.patches import TUMOR_THRESHOLD


def tumor_centre(mask: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """The tumour pixels' centroid of a (1, p, p) mask as (x, y) in [0, 1]: x along columns (array axis 1), y along
    rows (axis 0), each (index + 0.5) / p; the patch centre (0.5, 0.5) when there is no tumour (second value False).
    """
    plane = torch.as_tensor(mask)[0].float()
    total = plane.sum()
    if float(total) <= 0:
        return torch.tensor([0.5, 0.5]), False
    rows = (torch.arange(plane.shape[0], dtype=torch.float32) + 0.5) / plane.shape[0]
    cols = (torch.arange(plane.shape[1], dtype=torch.float32) + 0.5) / plane.shape[1]
    y = (plane.sum(dim=1) * rows).sum() / total
    x = (plane.sum(dim=0) * cols).sum() / total
    return torch.stack([x, y]), True


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
