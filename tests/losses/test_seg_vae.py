import math

import pytest
import torch
from monai.losses import DiceLoss

from livervae.losses import SegVAELoss


def test_terms_and_total():
    torch.manual_seed(0)
    seg = torch.randn(2, 2, 8, 8, 8, requires_grad=True)
    label = torch.randint(0, 2, (2, 1, 8, 8, 8))
    severity_logit = torch.tensor([0.2, 0.9], requires_grad=True)
    terms = SegVAELoss("dice_focal", vae_weight=0.5, severity_weight=2.0)(
        seg, label, torch.tensor(0.4), severity_logit, torch.tensor([0.4, float("nan")])
    )
    p = 1 / (1 + math.exp(-0.2))
    kl = 0.4 * math.log(0.4 / p) + 0.6 * math.log(0.6 / (1 - p))
    assert float(terms["severity"]) == pytest.approx(kl, rel=1e-5)
    assert float(terms["loss"]) == pytest.approx(float(terms["seg"]) + 0.5 * 0.4 + 2.0 * kl, rel=1e-5)
    terms["loss"].backward()
    assert severity_logit.grad[1] == 0 and float(severity_logit.grad[0]) == pytest.approx(2.0 * (p - 0.4), rel=1e-5)


def test_unknown_segmentation_loss():
    with pytest.raises(ValueError, match="dice_ce"):
        SegVAELoss("tversky")


def test_batch_dice_pools_the_batch():
    logits = torch.zeros(2, 2, 4, 4, 4)
    logits[:, 1] = -1.0  # P(tumour) about 0.27 everywhere
    label = torch.zeros(2, 1, 4, 4, 4)
    label[0, 0, :2] = 1  # tumour in the first sample only
    pooled = SegVAELoss(batch_dice=True)(logits, label)["seg"]
    per_sample = SegVAELoss(batch_dice=False)(logits, label)["seg"]
    assert float(pooled) < float(per_sample)
    ce = torch.nn.functional.cross_entropy(logits, label[:, 0].long())
    dice = DiceLoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)(logits, label)
    assert float(pooled) == pytest.approx(float(ce + dice), rel=1e-5)
