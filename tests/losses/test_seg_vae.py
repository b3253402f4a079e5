import pytest
import torch

from livervae.losses import SegVAELoss


def test_terms_and_total():
    torch.manual_seed(0)
    seg = torch.randn(2, 2, 8, 8, 8, requires_grad=True)
    label = torch.randint(0, 2, (2, 1, 8, 8, 8))
    severity_pred = torch.tensor([0.2, 0.9], requires_grad=True)
    terms = SegVAELoss("dice_focal", vae_weight=0.5, severity_weight=2.0)(
        seg, label, torch.tensor(0.4), severity_pred, torch.tensor([0.4, float("nan")])
    )
    assert float(terms["severity"]) == pytest.approx(0.04)
    assert float(terms["loss"]) == pytest.approx(float(terms["seg"]) + 0.5 * 0.4 + 2.0 * 0.04, rel=1e-6)
    terms["loss"].backward()
    assert severity_pred.grad[1] == 0 and severity_pred.grad[0] != 0


def test_unknown_segmentation_loss():
    with pytest.raises(ValueError, match="dice_ce"):
        SegVAELoss("tversky")
