"""Label-map post-processing MONAI does not provide: small tumour components become liver, not background."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from scipy import ndimage

from livervae.labels import LESION_CONNECTIVITY, LIVER, TUMOR


def remove_small_tumors(label: np.ndarray, min_voxels: int) -> np.ndarray:
    """Relabel 26-connected tumour components smaller than `min_voxels` as liver; return a new array."""
    out = label.copy()
    components, count = ndimage.label(label == TUMOR, structure=LESION_CONNECTIVITY)
    if count == 0 or min_voxels <= 1:
        return out
    sizes = np.bincount(components.ravel())
    small = np.flatnonzero(sizes < min_voxels)
    small = small[small > 0]
    out[np.isin(components, small)] = LIVER
    return out


class RemoveSmallTumorsd(MapTransform):
    """Turn tumour components below `min_volume_mm3` into liver in a (1, *spatial) 0/1/2 label map.

    MONAI's `RemoveSmallObjects` sets small objects to background; a speck of "tumor" inside the liver is
    liver, so it is relabelled instead. The volume threshold uses the map's own voxel size (MetaTensor
    affine), so it means the same at every spacing.

    Args:
        keys: label-map keys.
        min_volume_mm3: smallest tumour component kept (e.g. 20 mm³, a sphere of 3.4 mm diameter).
    """

    def __init__(self, keys: KeysCollection, min_volume_mm3: float = 20.0, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.min_volume_mm3 = float(min_volume_mm3)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            label = d[key]
            voxel_mm3 = (
                float(np.prod(np.asarray(label.pixdim, dtype=float)[:3])) if isinstance(label, MetaTensor) else 1.0
            )
            min_voxels = int(np.ceil(self.min_volume_mm3 / voxel_mm3))
            array = label.detach().cpu().numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
            cleaned = np.stack([remove_small_tumors(channel, min_voxels) for channel in array])
            if isinstance(label, torch.Tensor):
                cleaned_tensor = torch.as_tensor(cleaned, dtype=label.dtype, device=label.device)
                d[key] = label.clone().copy_(cleaned_tensor) if isinstance(label, MetaTensor) else cleaned_tensor
            else:
                d[key] = cleaned.astype(array.dtype)
        return d
