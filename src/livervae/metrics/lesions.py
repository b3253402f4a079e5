"""Lesion-wise detection: lesions are 26-connected tumour components, matched by any overlap.

A reference lesion is detected when at least one voxel of it is predicted tumour; a predicted lesion is a
true positive when it overlaps any reference lesion. Recall is reported by lesion size: by equivalent-sphere
diameter (< 10 mm, 10–20 mm, > 20 mm; the sub-centimetre group is where CT models fail most) and by lesion
volume below or from 10 cm³ (the small/large split of the SmoothSegNet evaluation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from livervae.labels import LESION_CONNECTIVITY

DIAMETER_BINS_MM = (("<10mm", 0.0, 10.0), ("10-20mm", 10.0, 20.0), (">20mm", 20.0, math.inf))
VOLUME_BINS_ML = (("<10cm3", 0.0, 10.0), (">=10cm3", 10.0, math.inf))


@dataclass(frozen=True)
class Lesion:
    """One reference or predicted lesion."""

    volume_ml: float
    diameter_mm: float
    matched: bool


def equivalent_diameter_mm(volume_ml: float) -> float:
    """Diameter of the sphere with this volume."""
    return (6.0 * volume_ml * 1000.0 / math.pi) ** (1.0 / 3.0)


def _lesions(mask: np.ndarray, other: np.ndarray, voxel_ml: float) -> list[Lesion]:
    components, count = ndimage.label(mask, structure=LESION_CONNECTIVITY)
    if count == 0:
        return []
    index = np.arange(1, count + 1)
    sizes = ndimage.sum_labels(np.ones_like(mask, dtype=np.int32), components, index)
    hits = ndimage.sum_labels(other.astype(np.int32), components, index)
    return [
        Lesion(float(size) * voxel_ml, equivalent_diameter_mm(float(size) * voxel_ml), bool(hit > 0))
        for size, hit in zip(sizes, hits)
    ]


def match_lesions(pred: np.ndarray, ref: np.ndarray, voxel_ml: float) -> tuple[list[Lesion], list[Lesion]]:
    """Reference lesions (matched = detected) and predicted lesions (matched = true positive)."""
    return _lesions(ref, pred, voxel_ml), _lesions(pred, ref, voxel_ml)


def detection_summary(reference: list[Lesion], predicted: list[Lesion]) -> dict[str, float | int]:
    """Counts, precision, recall and recall per size bin over any number of cases' lesions."""
    summary: dict[str, float | int] = {
        "reference_lesions": len(reference),
        "predicted_lesions": len(predicted),
        "detected": sum(lesion.matched for lesion in reference),
        "true_positive_predictions": sum(lesion.matched for lesion in predicted),
        "recall": _ratio(sum(lesion.matched for lesion in reference), len(reference)),
        "precision": _ratio(sum(lesion.matched for lesion in predicted), len(predicted)),
    }
    for name, low, high in DIAMETER_BINS_MM:
        group = [lesion for lesion in reference if low <= lesion.diameter_mm < high]
        summary[f"recall_{name}"] = _ratio(sum(lesion.matched for lesion in group), len(group))
        summary[f"lesions_{name}"] = len(group)
    for name, low, high in VOLUME_BINS_ML:
        group = [lesion for lesion in reference if low <= lesion.volume_ml < high]
        summary[f"recall_{name}"] = _ratio(sum(lesion.matched for lesion in group), len(group))
        summary[f"lesions_{name}"] = len(group)
    return summary


def _ratio(numerator: int, denominator: int) -> float:
    return math.nan if denominator == 0 else numerator / denominator
