import logging

import torch
from torch import nn

from livervae.networks.two_stage import TwoStageLiverTumorNet, window


class BoxLogits(nn.Module):
    """Predicts class 1 inside a world box given in input-grid fractions, class 0 elsewhere (a known answer)."""

    def __init__(self, low: float, high: float, strength: float = 10.0) -> None:
        super().__init__()
        self.low, self.high, self.strength = low, high, strength

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inside = (x > self.low) & (x < self.high)
        logit = self.strength * (inside.float() * 2 - 1)
        return torch.cat([-logit, logit], dim=1)


def _net(liver: nn.Module, tumour: nn.Module) -> TwoStageLiverTumorNet:
    return TwoStageLiverTumorNet(
        liver,
        tumour,
        input_spacing=(2.0, 2.0, 2.0),
        liver_spacing=(4.0, 4.0, 4.0),
        liver_window=(0.0, 100.0),
        tumor_window=(0.0, 100.0),
        liver_roi=(16, 16, 16),
        tumor_roi=(16, 16, 16),
        margin_mm=4.0,
    ).eval()


def _phantom() -> torch.Tensor:
    x = torch.zeros(1, 1, 40, 40, 40)
    x[..., 10:30, 10:30, 10:30] = 50.0  # "liver": windowed to 0.5
    x[..., 16:20, 16:20, 16:20] = 80.0  # "tumor": windowed to 0.8
    return x


def test_probabilities_compose_and_tumor_stays_in_the_crop():
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


def test_tumour_gate_removes_tumour_in_the_crop_but_away_from_the_liver():
    x = _phantom()
    x[..., 6:9, 16:20, 16:20] = 90.0  # tumour-like, not liver-like, inside the crop's margin: a heart or stomach
    outputs = {}
    for gate in (None, 0.0, 8.0):
        net = TwoStageLiverTumorNet(**{**_two_stage_arguments(), "margin_mm": 8.0, "tumor_gate_mm": gate}).eval()
        net.liver_net, net.tumor_net = BoxLogits(0.3, 0.85), BoxLogits(0.7, 0.95)
        with torch.no_grad():
            outputs[gate] = net(x).argmax(dim=1)[0]
    for label in outputs.values():
        assert bool((label[16:20, 16:20, 16:20] == 2).all())  # the tumour inside the liver always stays
    assert bool((outputs[None][6:9, 16:20, 16:20] == 2).all())
    assert int((outputs[0.0][0:9] == 2).sum()) == 0
    assert bool((outputs[8.0][7:9, 16:20, 16:20] == 2).all())  # within 8 mm of the liver: kept


def test_tumour_gate_grows_the_largest_liver_component_by_millimetres_per_axis():
    from monai.transforms.utils import get_largest_connected_component_mask

    net = TwoStageLiverTumorNet(**{**_two_stage_arguments(), "input_spacing": (1.0, 2.0, 4.0), "tumor_gate_mm": 4.0})
    liver = torch.zeros(1, 20, 20, 20, dtype=torch.bool)
    liver[0, 10, 10, 10] = True
    liver[0, 0, 0, 0] = True  # a smaller (equal) component elsewhere must not open the gate twice
    liver[0, 10, 10, 11] = True
    gate = net.tumour_gate(get_largest_connected_component_mask(liver))[0, 0]  # as stage_probabilities passes it
    assert gate.shape == (20, 20, 20)
    assert tuple(int(v) for v in gate.nonzero().amin(0)) == (6, 8, 9)
    assert tuple(int(v) for v in gate.nonzero().amax(0)) == (14, 12, 12)
    assert float(gate[0, 0, 0]) == 0.0


def test_tumour_gate_must_not_be_negative():
    import pytest

    with pytest.raises(ValueError, match="tumor_gate_mm"):
        TwoStageLiverTumorNet(**{**_two_stage_arguments(), "tumor_gate_mm": -1.0})


def test_no_liver_means_no_tumor_run(caplog):
    with caplog.at_level(logging.WARNING), torch.no_grad():
        out = _net(BoxLogits(2.0, 3.0), BoxLogits(0.0, 1.0))(_phantom())
    assert float(out[:, 2].max()) == 0.0 and "found no liver" in caplog.text


def test_no_liver_still_gives_a_tumour_pass_for_every_liver_pass():
    net = _net(BoxLogits(2.0, 3.0), BoxLogits(0.0, 1.0))
    net.flips, net.hu_shifts = ((0,),), (-25.0, 25.0)
    with torch.no_grad():
        stages = net.stage_probabilities(_phantom())
    assert stages.box is None
    assert stages.liver_passes.shape == stages.tumour_passes.shape == (4, 1, 40, 40, 40)
    assert float(stages.tumour_passes.abs().max()) == 0.0


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
    net = TwoStageLiverTumorNet(**{**_two_stage_arguments(), "dropout": 0.5})
    assert set(net.state_dict()) == set(plain.state_dict())  # same checkpoint either way
    x = _phantom()
    with torch.no_grad():
        net.eval()
        assert torch.equal(net(x), net(x))
        net.train()
        first, second = net(x), net(x)
    assert first.shape == (1, 3, 40, 40, 40) and not torch.equal(first, second)
    assert not net.liver_net.training and not net.tumor_net.training  # still segmenters, one tensor out
    assert net.liver_net.dropout.training and net.tumor_net.dropout.training


def _two_stage_arguments():
    return dict(
        liver_net=_stage(),
        tumor_net=_stage(),
        input_spacing=(2.0, 2.0, 2.0),
        liver_spacing=(4.0, 4.0, 4.0),
        liver_window=(0.0, 100.0),
        tumor_window=(0.0, 100.0),
        liver_roi=(16, 16, 16),
        tumor_roi=(16, 16, 16),
        margin_mm=4.0,
    )


def test_dropout_needs_stages_that_can_switch_it_on():
    import pytest

    with pytest.raises(TypeError, match="cannot switch dropout on"):
        TwoStageLiverTumorNet(**{**_two_stage_arguments(), "liver_net": BoxLogits(0.3, 0.9), "dropout": 0.2})


class Recorder(nn.Module):
    """Wraps a stage: remembers every input window it is given."""

    def __init__(self, stage: nn.Module) -> None:
        super().__init__()
        self.stage, self.inputs = stage, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return self.stage(x)


def test_stage_one_sees_what_the_liver_model_was_trained_on():
    # Training: Spacingd to the liver spacing on HU, then ScaleIntensityRanged. The chain must give the liver model
    # that same array, not a half-voxel-shifted or clip-then-interpolated one.
    from monai.data import MetaTensor
    from monai.transforms import ScaleIntensityRange, Spacing

    torch.manual_seed(0)
    hu = torch.randn(1, 1, 41, 38, 36) * 60 + 40
    fine = MetaTensor(hu[0], affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0], dtype=torch.float64)))
    trained_on = ScaleIntensityRange(0.0, 100.0, 0.0, 1.0, clip=True)(Spacing(pixdim=(4.0, 4.0, 4.0))(fine))
    liver = Recorder(BoxLogits(0.3, 0.95))
    net = TwoStageLiverTumorNet(
        liver,
        BoxLogits(0.7, 0.95),
        input_spacing=(2.0, 2.0, 2.0),
        liver_spacing=(4.0, 4.0, 4.0),
        liver_window=(0.0, 100.0),
        tumor_window=(0.0, 100.0),
        liver_roi=tuple(trained_on.shape[1:]),
        tumor_roi=(16, 16, 16),
    ).eval()
    with torch.no_grad():
        net(hu)
    assert len(liver.inputs) == 1
    assert torch.allclose(liver.inputs[0][0], trained_on.as_tensor(), atol=1e-5)


def test_liver_probability_returns_to_the_input_grid_without_a_shift():
    # A liver model that predicts "liver" on the right half of its coarse grid; back on the fine grid the boundary
    # must sit where the coarse voxels are (voxel i at fine index 2i), symmetric about the boundary.
    class RightHalf(nn.Module):
        def forward(self, x):
            logit = torch.full_like(x, -10.0)
            logit[:, :, 10:] = 10.0
            return torch.cat([-logit, logit], dim=1)

    net = _net(RightHalf(), BoxLogits(0.7, 0.95))
    net.liver_roi = (20, 20, 20)
    with torch.no_grad():
        probability = net.liver_probability(torch.zeros(1, 1, 40, 40, 40))[0, 0, :, 20, 20]
    # coarse voxels 9 (out) and 10 (in) are fine voxels 18 and 20: fine 19 lies half way
    assert float(probability[18]) < 0.01 and float(probability[20]) > 0.99
    assert abs(float(probability[19]) - 0.5) < 0.01


def test_tumor_windows_are_padded_with_zero_as_in_training():
    x = torch.full((1, 1, 40, 40, 40), 20.0)  # background windowed to 0.2, never 0
    x[..., 10:30, 10:30, 10:30] = 50.0
    tumour = Recorder(BoxLogits(0.7, 0.95))
    net = _net(BoxLogits(0.3, 0.95), tumour)
    net.tumor_roi = (32, 32, 32)  # the crop is about 24 voxels (liver 20 + 2 × 2 margin): the rest is padding
    with torch.no_grad():
        net(x)
    window_in = tumour.inputs[0]
    assert tuple(window_in.shape[2:]) == (32, 32, 32)
    side = round(int((window_in > 0).sum()) ** (1 / 3))
    assert 20 <= side <= 24 and int((window_in > 0).sum()) == side**3  # the crop, one cube, never 0 inside
    assert int((window_in == 0).sum()) == 32**3 - side**3  # replicate padding would have left no 0 at all


def test_weights_saved_with_the_old_tumour_spelling_load_strictly():
    net = _net(_stage(), _stage())
    old = {key.replace("tumor_net.", "tumour_net."): value for key, value in net.state_dict().items()}
    assert any(key.startswith("tumour_net.") for key in old)
    fresh = _net(_stage(), _stage())
    fresh.load_state_dict(old, strict=True)  # as MONAI's CheckpointLoader does with a 0.1 model.pt
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), net.state_dict().values()))


def test_temperature_scaling_of_the_stage_probability_equals_softmax_of_scaled_logits():
    from livervae.networks.two_stage import temper

    logits = torch.tensor([[-3.0, 1.0], [0.5, 0.2], [2.0, -4.0]])
    probability = torch.softmax(logits, dim=1)[:, 1]
    expected = torch.softmax(logits / 2.5, dim=1)[:, 1]
    assert torch.allclose(temper(probability, 2.5), expected, atol=1e-6)
    assert torch.equal(temper(probability, 1.0), probability)


def test_test_time_passes_are_identity_flips_and_hu_shifts_and_their_mean_is_the_forward():
    net = _net(BoxLogits(0.3, 0.7), BoxLogits(0.65, 0.9))
    net.flips, net.hu_shifts = ((0,), (1, 2)), (-40.0,)
    assert net.passes() == [((), 0.0), ((0,), 0.0), ((1, 2), 0.0), ((), -40.0)]
    stages = net.stage_probabilities(_phantom())
    assert stages.liver_passes.shape[0] == 4 and stages.tumour_passes.shape[0] == 4
    # The box models are flip-equivariant: flipped passes agree with the identity pass.
    assert torch.allclose(stages.liver_passes[0], stages.liver_passes[1], atol=1e-5)
    # A -40 HU shift moves the "tumour" (80 HU -> 0.4) out of the tumour model's box: that pass finds none.
    assert float(stages.tumour_passes[3].max()) < 0.01 < float(stages.tumour_passes[0].max())
    assert torch.allclose(stages.tumour, stages.tumour_passes.mean(0, keepdim=True), atol=1e-6)
    assert torch.allclose(net(_phantom()), stages.classes(), atol=1e-6)


def test_liver_reconstruction_loss_is_repeatable_and_leaves_the_global_rng_alone():
    net = TwoStageLiverTumorNet(**_two_stage_arguments()).eval()
    image = _phantom()
    torch.manual_seed(5)
    state = torch.random.get_rng_state()
    first = net.liver_reconstruction_loss(image, net.liver_probability(image))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert first == net.liver_reconstruction_loss(image, net.liver_probability(image))
    noisy = image + 60.0 * torch.randn_like(image)
    assert net.liver_reconstruction_loss(noisy) != first
