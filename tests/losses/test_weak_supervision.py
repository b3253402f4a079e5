import pytest
import torch

from livervae.losses import SeverityLoss


def test_masks_missing_indicators():
    pred = torch.tensor([0.1, 0.5, 0.9], requires_grad=True)
    loss = SeverityLoss()(pred, torch.tensor([0.3, float("nan"), 0.5]))
    assert float(loss) == pytest.approx(((0.1 - 0.3) ** 2 + (0.9 - 0.5) ** 2) / 2)


def test_all_missing_is_zero_but_keeps_the_graph():
    pred = torch.tensor([0.1, 0.5], requires_grad=True)
    loss = SeverityLoss()(pred, torch.tensor([float("nan"), float("nan")]))
    loss.backward()
    assert float(loss) == 0.0 and torch.equal(pred.grad, torch.zeros(2))
