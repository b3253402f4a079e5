import math

import pytest
import torch

from livervae.losses import PatchVAELoss, kl_divergence
from livervae.networks.patch_vae import PatchVAEOutput


def test_kl_matches_the_closed_form():
    assert float(kl_divergence(torch.zeros(3, 4), torch.zeros(3, 4))) == 0.0
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]])
    expected = 0.5 * (1.0) + 0.5 * (2.0 - 1.0 - math.log(2.0))
    assert float(kl_divergence(mu, logvar)) == pytest.approx(expected)


def _output(coords):
    return PatchVAEOutput(
        recon=torch.full((2, 1, 4, 4), 0.5),
        mask_logits=torch.zeros(2, 1, 4, 4),
        coords=coords,
        mu=torch.zeros(2, 3),
        logvar=torch.zeros(2, 3),
        class_logits=torch.zeros(2, 2),
    )


def test_terms_and_weights():
    image = torch.zeros(2, 1, 4, 4)
    coords = torch.tensor([[0.2, 0.2], [0.9, 0.9]])
    out = _output(torch.tensor([[0.5, 0.5], [0.5, 0.5]]))
    has_tumor = torch.tensor([1.0, 0.0])  # the second patch's centre is undefined: ignored
    terms = PatchVAELoss(kl_weight=0.5, mask_weight=2.0, coord_weight=3.0)(
        out, image, torch.zeros(2, 1, 4, 4), coords, has_tumor
    )
    assert float(terms["recon"]) == pytest.approx(0.25)
    assert float(terms["mask"]) == pytest.approx(math.log(2.0))
    assert float(terms["coords"]) == pytest.approx(0.09 + 0.09)
    assert float(terms["loss"]) == pytest.approx(0.25 + 2.0 * math.log(2.0) + 3.0 * 0.18)
    none = PatchVAELoss()(out, image, torch.zeros(2, 1, 4, 4), coords, torch.zeros(2))
    assert float(none["coords"]) == 0.0
    with pytest.raises(ValueError, match="kl_weight must be >= 0"):
        PatchVAELoss(kl_weight=-1)
