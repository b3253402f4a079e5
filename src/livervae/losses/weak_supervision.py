"""Weak supervision of the tumour model by a per-patient clinical severity indicator.

The indicator (see `livervae.data.clinical`) is a population-level, noisy label of tumour burden. Tying the
network's severity head to it regularises the shared encoder towards features that reflect tumour burden.
Patients without an indicator carry NaN and contribute nothing.
"""

from __future__ import annotations

import torch
from torch import nn


class SeverityLoss(nn.Module):
    """Mean squared error between predicted and clinical severity over the samples that have one."""

    def forward(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the masked MSE; zero (still attached to the graph) when no sample has an indicator.

        Args:
            predicted: (B,) severities in [0, 1].
            target: (B,) clinical indicators, NaN where missing.
        """
        target = target.to(predicted.device, predicted.dtype).reshape(predicted.shape)
        present = torch.isfinite(target)
        if not bool(present.any()):
            return predicted.sum() * 0.0
        return torch.mean((predicted[present] - target[present]) ** 2)
