"""Per-case overlap and surface metrics for liver and tumour (LiTS conventions).

- Dice per case: 2|P∩G| / (|P|+|G|); when both masks are empty the case scores 1 (LiTS), when only one is
  empty it scores 0.
- Global Dice: 2ΣTP / (Σ|P| + Σ|G|) over all cases, so large tumours weigh more (LiTS "Dice global").
- HD95 and ASSD in millimetres (MONAI), NaN when either mask is empty.
- Volume error: (V_pred - V_gt) / V_gt, NaN when the reference is empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

from livervae.labels import LIVER, TUMOR


@dataclass(frozen=True)
class OverlapCounts:
    """Voxel counts from which Dice (per case and global) is computed."""

    intersection: int
    predicted: int
    reference: int

    @property
    def dice(self) -> float:
        total = self.predicted + self.reference
        return 1.0 if total == 0 else 2.0 * self.intersection / total


def overlap(pred: np.ndarray, ref: np.ndarray) -> OverlapCounts:
    """Intersection and sizes of two boolean masks."""
    return OverlapCounts(int(np.count_nonzero(pred & ref)), int(np.count_nonzero(pred)), int(np.count_nonzero(ref)))


def global_dice(counts: list[OverlapCounts]) -> float:
    """Dice over the union of all cases (NaN for no cases; 1 when every mask is empty)."""
    if not counts:
        return math.nan
    return OverlapCounts(
        sum(c.intersection for c in counts), sum(c.predicted for c in counts), sum(c.reference for c in counts)
    ).dice


def surface_distances(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> tuple[float, float]:
    """HD95 and symmetric average surface distance (mm) between two masks; NaN when either is empty."""
    if not pred.any() or not ref.any():
        return math.nan, math.nan
    p = torch.from_numpy(pred[None, None].astype(np.float32))
    r = torch.from_numpy(ref[None, None].astype(np.float32))
    hd95 = compute_hausdorff_distance(p, r, include_background=True, percentile=95, spacing=list(spacing))
    assd = compute_average_surface_distance(p, r, include_background=True, symmetric=True, spacing=list(spacing))
    return float(hd95.item()), float(assd.item())


def volume_error(pred: np.ndarray, ref: np.ndarray) -> float:
    """Relative volume error (V_pred - V_gt) / V_gt; NaN for an empty reference."""
    reference = np.count_nonzero(ref)
    return math.nan if reference == 0 else (np.count_nonzero(pred) - reference) / reference


def structure_masks(label: np.ndarray) -> dict[str, np.ndarray]:
    """The evaluated structures of a 0/1/2 map: liver (1 or 2, the whole organ) and tumour (2)."""
    return {"liver": label >= LIVER, "tumor": label == TUMOR}
