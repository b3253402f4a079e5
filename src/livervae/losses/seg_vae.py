"""Total training loss of the SegResNetVAE models: segmentation + weight × VAE + weight × severity.

MONAI returns the VAE loss unweighted; Myronenko (2018) weights it 0.1, the default here.
"""

from __future__ import annotations

import torch
from monai.losses import DiceCELoss, DiceFocalLoss
from torch import nn

from livervae.losses.weak_supervision import SeverityLoss

SEGMENTATION_LOSSES = ("dice_ce", "dice_focal")


class SegVAELoss(nn.Module):
    """Combine the segmentation, VAE and weak-supervision terms; report each for logging.

    Args:
        segmentation: "dice_ce" (MONAI DiceCELoss) or "dice_focal" (MONAI DiceFocalLoss), both with softmax
            over the output channels and a one-hot target.
        vae_weight: weight of the VAE loss (0 disables its gradient contribution).
        severity_weight: weight of the weak-supervision term (0 disables it).
        include_background: passed to the Dice part.
        batch_dice: compute Dice over the whole batch rather than per sample (nnU-Net's choice): a patch
            without tumour then does not pull every voxel's tumour probability towards zero on its own, which
            held small-lesion training at a uniform low probability.
    """

    def __init__(
        self,
        segmentation: str = "dice_ce",
        vae_weight: float = 0.1,
        severity_weight: float = 0.0,
        include_background: bool = False,
        batch_dice: bool = False,
    ) -> None:
        super().__init__()
        if segmentation not in SEGMENTATION_LOSSES:
            raise ValueError(f"segmentation loss must be one of {SEGMENTATION_LOSSES}, got {segmentation!r}")
        common = {
            "to_onehot_y": True,
            "softmax": True,
            "include_background": include_background,
            "batch": batch_dice,
        }
        self.segmentation = DiceCELoss(**common) if segmentation == "dice_ce" else DiceFocalLoss(**common)
        self.vae_weight = float(vae_weight)
        self.severity_weight = float(severity_weight)
        self.severity = SeverityLoss()

    def forward(
        self,
        seg: torch.Tensor,
        label: torch.Tensor,
        vae_loss: torch.Tensor | None = None,
        severity_logit: torch.Tensor | None = None,
        severity_target: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Return {"loss": total, "seg": ..., "vae": ..., "severity": ...}; absent terms are omitted."""
        terms = {"seg": self.segmentation(seg, label)}
        total = terms["seg"]
        if vae_loss is not None and self.vae_weight > 0:
            terms["vae"] = vae_loss
            total = total + self.vae_weight * vae_loss
        if severity_logit is not None and severity_target is not None and self.severity_weight > 0:
            terms["severity"] = self.severity(severity_logit, severity_target)
            total = total + self.severity_weight * terms["severity"]
        terms["loss"] = total
        return terms
