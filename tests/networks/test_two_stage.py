import logging

import torch
from torch import nn

from livervae.networks.two_stage import TwoStageLiverTumourNet, window


class BoxLogits(nn.Module):
    """Predicts class 1 inside a world box given in input-grid fractions, class 0 elsewhere (a known answer)."""

    def __init__(self, low: float, high: float, strength: float = 10.0) -> None:
        super().__init__()
        self.low, self.high, self.strength = low, high, strength

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inside = (x > self.low) & (x < self.high)
        logit = self.strength * (inside.float() * 2 - 1)
        return torch.cat([-logit, logit], dim=1)


def _net(liver: nn.Module, tumour: nn.Module) -> TwoStageLiverTumourNet:
    return TwoStageLiverTumourNet(
        liver,
        tumour,
        input_spacing=(2.0, 2.0, 2.0),
        liver_spacing=(4.0, 4.0, 4.0),
        liver_window=(0.0, 100.0),
        tumour_window=(0.0, 100.0),
        liver_roi=(16, 16, 16),
        tumour_roi=(16, 16, 16),
        margin_mm=4.0,
    ).eval()


def _phantom() -> torch.Tensor:
    x = torch.zeros(1, 1, 40, 40, 40)
    x[..., 10:30, 10:30, 10:30] = 50.0  # "liver": windowed to 0.5
    x[..., 16:20, 16:20, 16:20] = 80.0  # "tumour": windowed to 0.8
    return x


def test_probabilities_compose_and_tumour_stays_in_the_crop():
    x = _phantom()
    x[..., 0:3, 0:3, 0:3] = 80.0  # tumour-like intensity far outside the liver: outside the crop
    with torch.no_grad():
        out = _net(BoxLogits(0.3, 0.95), BoxLogits(0.7, 0.95))(x)
    assert out.shape == (1, 3, 40, 40, 40)
    assert torch.allclose(out.sum(dim=1), torch.ones(1, 40, 40, 40), atol=1e-5)
    label = out.argmax(dim=1)[0]
    assert bool((label[16:20, 16:20, 16:20] == 2).all())
    assert bool((label[22:28, 22:28, 22:28] == 1).all())
    assert int((label[0:3, 0:3, 0:3] == 2).sum()) == 0  # the tumour model never saw it
    assert int((label[0:5, 35:40, 35:40]).sum()) == 0


def test_no_liver_means_no_tumour_run(caplog):
    with caplog.at_level(logging.WARNING), torch.no_grad():
        out = _net(BoxLogits(2.0, 3.0), BoxLogits(0.0, 1.0))(_phantom())
    assert float(out[:, 2].max()) == 0.0 and "found no liver" in caplog.text


def test_window_matches_scale_intensity_range():
    x = torch.tensor([-300.0, -200.0, 25.0, 250.0, 400.0])
    assert torch.allclose(window(x, -200, 250), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))


def _stage():
    from livervae.networks import SegResNetVAEWithHeads

    torch.manual_seed(0)
    return SegResNetVAEWithHeads(
        input_image_size=(16, 16, 16), init_filters=8, out_channels=2, blocks_down=(1, 1), blocks_up=(1,)
    )


def test_dropout_switches_on_mc_dropout_in_train_mode_only():
    plain = _net(_stage(), _stage())
    net = TwoStageLiverTumourNet(**{**_two_stage_arguments(), "dropout": 0.5})
    assert set(net.state_dict()) == set(plain.state_dict())  # same checkpoint either way
    x = _phantom()
    with torch.no_grad():
        net.eval()
        assert torch.equal(net(x), net(x))
        net.train()
        first, second = net(x), net(x)
    assert first.shape == (1, 3, 40, 40, 40) and not torch.equal(first, second)
    assert not net.liver_net.training and not net.tumour_net.training  # still segmenters, one tensor out
    assert net.liver_net.dropout.training and net.tumour_net.dropout.training


def _two_stage_arguments():
    return dict(
        liver_net=_stage(),
        tumour_net=_stage(),
        input_spacing=(2.0, 2.0, 2.0),
        liver_spacing=(4.0, 4.0, 4.0),
        liver_window=(0.0, 100.0),
        tumour_window=(0.0, 100.0),
        liver_roi=(16, 16, 16),
        tumour_roi=(16, 16, 16),
        margin_mm=4.0,
    )


def test_dropout_needs_stages_that_can_switch_it_on():
    import pytest

    with pytest.raises(TypeError, match="cannot switch dropout on"):
        TwoStageLiverTumourNet(**{**_two_stage_arguments(), "liver_net": BoxLogits(0.3, 0.9), "dropout": 0.2})
