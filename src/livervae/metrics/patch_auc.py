"""Patch-level ROC AUC (MONAI's ROCAUC) of the patch VAE and the U-Net baselines.

- `map_patch_scores`: a segmentation model's patch score, the mean tumour probability over the patch (inside the
  liver), on the same patch grid as the patch VAE (`livervae.data.patches.grid_patches`).
- `PatchMapAUC`: an Ignite metric for a segmentation evaluator over 2D slices (U-Net validation), so both model
  families stop early on the same quantity: patch AUC on the validation patient.

The report built from these (`PatchReportHandler`) is in `livervae.handlers.patch_report`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
from ignite.metrics import Metric
from monai.metrics import compute_roc_auc

from livervae.data.patches import PatchGrid, grid_patches
from livervae.labels import LIVER

logger = logging.getLogger(__name__)


def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """ROC AUC of `scores` against 0/1 `labels` (MONAI `compute_roc_auc`), or None when one class is absent."""
    y = torch.as_tensor(list(labels), dtype=torch.long)
    if y.numel() == 0 or int(y.min()) == int(y.max()):
        return None
    return float(compute_roc_auc(torch.as_tensor(list(scores), dtype=torch.float64), y))


def map_patch_scores(
    probability: torch.Tensor, label: torch.Tensor, grid: PatchGrid = PatchGrid()
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores (mean tumour probability masked to the liver) and labels of the liver patches of one (1, H, W) slice."""
    probability = torch.as_tensor(probability).float().cpu()
    label = torch.as_tensor(label).round().cpu()
    masked = probability * (label >= LIVER)
    patches = grid_patches(masked, label, grid)
    return patches["image"].mean(dim=(1, 2, 3)), patches["label"]


class PatchMapAUC(Metric):
    """Patch AUC of a 2D segmentation evaluator: `output_transform` must give (pred, label) lists of (C, H, W)
    softmax probabilities and (1, H, W) 0/1/2 label maps (keep the liver in the validation label).

    Args:
        grid: the patch grid.
        tumor_channel: the tumour channel of `pred`.
    """

    def __init__(
        self,
        grid: PatchGrid = PatchGrid(),
        tumor_channel: int = 1,
        output_transform: Any = lambda x: x,
    ) -> None:
        self.grid = grid
        self.tumor_channel = int(tumor_channel)
        super().__init__(output_transform=output_transform)

    def reset(self) -> None:
        self._scores: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def update(self, output: tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]]) -> None:
        preds, labels = output
        for pred, label in zip(preds, labels):
            channel = torch.as_tensor(pred)[self.tumor_channel : self.tumor_channel + 1]
            scores, patch_labels = map_patch_scores(channel, label, self.grid)
            self._scores.append(scores)
            self._labels.append(patch_labels)

    def compute(self) -> float:
        scores = torch.cat(self._scores) if self._scores else torch.zeros(0)
        labels = torch.cat(self._labels) if self._labels else torch.zeros(0, dtype=torch.long)
        auc = roc_auc(scores.tolist(), labels.tolist())
        if auc is None:
            logger.warning("validation patches hold one class only: patch AUC undefined, reported as 0.5")
            return 0.5
        return auc


def threshold_at_sensitivity(scores: Sequence[float], labels: Sequence[int], sensitivity: float = 0.8) -> float | None:
    """The highest score threshold at which at least `sensitivity` of the positive patches score at or above it
    (None without positives): an operating point that means the same for models whose scores differ in scale."""
    positives = sorted((float(s) for s, y in zip(scores, labels) if int(y) == 1), reverse=True)
    if not positives:
        return None
    # The tolerance keeps products such as 0.7 * 10 = 7.000000000000001 from asking for one positive more.
    needed = max(1, math.ceil(float(sensitivity) * len(positives) - 1e-9))
    return positives[min(needed, len(positives)) - 1]


def vessel_false_positives(
    rows: Sequence[dict[str, Any]], sensitivity: float = 0.8, min_bright_fraction: float = 0.1
) -> dict[str, Any]:
    """False-positive rates of one evaluation's patches on bright vessels, at the `sensitivity` operating point.

    A vessel-only patch has no tumour pixel and at least `min_bright_fraction` of its pixels at the vessel level
    ("bright_fraction" of the patch records, `LiverPatchInferer(bright_level=...)`); the other tumour-free patches
    are the reference. A patch is called positive at or above the threshold that finds `sensitivity` of the
    tumour patches.

    Returns:
        {"threshold", "vessel_patches", "vessel_false_positives", "vessel_fp_rate", "other_patches",
        "other_false_positives", "other_fp_rate"} (rates None where a group is empty or no threshold exists).
    """
    rows = [r for r in rows if r.get("bright_fraction") not in (None, "")]
    threshold = threshold_at_sensitivity([r["score"] for r in rows], [r["label"] for r in rows], sensitivity)
    groups: dict[str, list[bool]] = {"vessel": [], "other": []}
    for r in rows:
        if float(r["tumor_fraction"]) > 0:
            continue
        group = "vessel" if float(r["bright_fraction"]) >= min_bright_fraction else "other"
        groups[group].append(threshold is not None and float(r["score"]) >= threshold)
    out: dict[str, Any] = {"threshold": threshold}
    for name, calls in groups.items():
        out[f"{name}_patches"] = len(calls)
        out[f"{name}_false_positives"] = sum(calls)
        out[f"{name}_fp_rate"] = sum(calls) / len(calls) if calls and threshold is not None else None
    return out
