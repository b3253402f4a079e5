"""Patch-level ROC AUC (MONAI's ROCAUC) of the patch VAE and the U-Net baselines.

- `map_patch_scores`: a segmentation model's patch score, the mean tumour probability over the patch (inside the
  liver), on the same patch grid as the patch VAE (`livervae.data.patches.grid_patches`).
- `PatchMapAUC`: an Ignite metric for a segmentation evaluator over 2D slices (U-Net validation), so both model
  families stop early on the same quantity: patch AUC on the validation patient.

The report built from these (`PatchReportHandler`) is in `livervae.handlers.patch_report`.
"""

from __future__ import annotations

import logging
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
