"""Per-case statistics for `summary.json`: geometry, HU range, liver and tumour volumes, lesion count."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from livervae.io.volume import Volume
from livervae.labels import LABEL_NAMES, LESION_CONNECTIVITY, LIVER, TUMOR

# Lesions are 26-connected components of the tumour label, as in LiTS' lesion-wise evaluation.


def lesion_volumes_ml(tumour: np.ndarray, voxel_ml: float) -> list[float]:
    """Volumes (mL) of the 26-connected tumour components, largest first."""
    components, count = ndimage.label(tumour, structure=LESION_CONNECTIVITY)
    if count == 0:
        return []
    sizes = np.bincount(components.ravel())[1:]
    return sorted((float(s) * voxel_ml for s in sizes), reverse=True)


def summarise_case(image: Volume, label: np.ndarray | None) -> dict[str, Any]:
    """Describe one case: shape, spacing, orientation, HU range and, with a label map, volumes and lesions."""
    values = image.array
    summary: dict[str, Any] = {
        "shape": list(image.shape),
        "spacing_mm": [round(s, 4) for s in image.spacing],
        "orientation": image.axcodes,
        "hu_range": [float(values.min()), float(values.max())],
        "dtype": str(values.dtype),
    }
    if label is None:
        summary["labelled"] = False
        return summary
    voxel_ml = image.voxel_volume_ml
    liver = label >= LIVER
    tumour = label == TUMOR
    lesions = lesion_volumes_ml(tumour, voxel_ml)
    parenchyma = label == LIVER
    summary.update(
        {
            "labelled": True,
            "label_voxels": {name: int(np.count_nonzero(label == value)) for value, name in LABEL_NAMES.items()},
            "liver_voxels": int(liver.sum()),
            "tumor_voxels": int(tumour.sum()),
            "liver_ml": round(float(liver.sum()) * voxel_ml, 2),
            "tumor_ml": round(float(tumour.sum()) * voxel_ml, 2),
            "tumor_fraction_of_liver": round(float(tumour.sum()) / max(float(liver.sum()), 1.0), 5),
            "lesion_count": len(lesions),
            "lesion_volumes_ml": [round(v, 3) for v in lesions],
            "liver_mean_hu": round(float(values[parenchyma].mean()), 1) if parenchyma.any() else None,
        }
    )
    return summary
