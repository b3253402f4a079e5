"""Weak supervision of the tumour model by a per-patient clinical severity indicator.

The indicator (see `livervae.data.clinical`) is a population-level, noisy label of tumour burden in [0, 1].
Tying the network's severity head to it regularises the shared encoder towards features that reflect tumour
burden. The head predicts a logit; the loss is the KL divergence between Bernoulli(indicator) and
Bernoulli(sigmoid(logit)), i.e. binary cross-entropy with the indicator as a soft target minus the target's
entropy: its gradient, sigmoid(logit) - indicator, never vanishes (a squared error on a sigmoid saturates and
the head dies), and it is 0 for a perfect prediction. Patients without an indicator carry NaN and contribute
nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SeverityLoss(nn.Module):
    """Bernoulli KL divergence between clinical indicator and predicted severity, over samples that have one."""

    def forward(self, logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the mean divergence; zero (still attached to the graph) when no sample has an indicator.

        Args:
            logit: (B,) severity logits from the head.
            target: (B,) clinical indicators in [0, 1], NaN where missing.
        """
        target = target.to(logit.device, logit.dtype).reshape(logit.shape)
        present = torch.isfinite(target)
        if not bool(present.any()):
            return logit.sum() * 0.0
        t, z = target[present], logit[present]
        cross_entropy = F.binary_cross_entropy_with_logits(z, t, reduction="none")
        entropy = -(torch.xlogy(t, t) + torch.xlogy(1 - t, 1 - t))
        return torch.mean(cross_entropy - entropy)
