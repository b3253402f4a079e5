import pytest
import torch
from monai.networks.nets import SegResNet

from livervae.losses import SegVAELoss
from livervae.networks import SegResNetVAEOutput, SegResNetVAEWithHeads

SIZE = (32, 32, 16)


def _net(**kwargs) -> SegResNetVAEWithHeads:
    torch.manual_seed(0)
    return SegResNetVAEWithHeads(SIZE, init_filters=8, out_channels=2, **kwargs)


def test_eval_returns_one_tensor_of_any_size():
    net = _net().eval()
    with torch.no_grad():
        out = net(torch.rand(1, 1, 48, 40, 24))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 2, 48, 40, 24)


def test_training_returns_vae_loss_and_gradients_reach_the_vae_branch():
    net = _net(severity_head=True).train()
    out = net(torch.rand(2, 1, *SIZE))
    assert isinstance(out, SegResNetVAEOutput) and out.vae_loss.ndim == 0 and out.severity_logit.shape == (2,)
    terms = SegVAELoss(vae_weight=0.1)(out.seg, torch.randint(0, 2, (2, 1, *SIZE)), out.vae_loss)
    terms["loss"].backward()
    vae_grads = [p.grad for name, p in net.named_parameters() if name.startswith("vae_")]
    assert vae_grads and all(g is not None and g.abs().sum() > 0 for g in vae_grads)
    assert not hasattr(net, "vae_fc2")  # the unused std head is dropped (fixed std)


def test_vae_weight_changes_the_loss_by_weight_times_vae_loss():
    net = _net().train()
    torch.manual_seed(1)
    out = net(torch.rand(1, 1, *SIZE))
    label = torch.randint(0, 2, (1, 1, *SIZE))
    plain = SegVAELoss(vae_weight=0.0)(out.seg, label, out.vae_loss)
    weighted = SegVAELoss(vae_weight=0.1)(out.seg, label, out.vae_loss)
    assert "vae" not in plain and float(plain["loss"]) == pytest.approx(float(plain["seg"]))
    assert float(weighted["loss"] - plain["loss"]) == pytest.approx(0.1 * float(out.vae_loss), rel=1e-5)


def test_training_input_must_match_the_vae_size():
    with pytest.raises(ValueError, match="must equal the network's input_image_size"):
        _net().train()(torch.rand(1, 1, 48, 32, 16))
    assert _net(vae=False).train()(torch.rand(1, 1, 48, 32, 16)).vae_loss is None


def test_inference_equals_a_plain_segresnet_with_the_same_weights():
    net = _net().eval()
    plain = SegResNet(init_filters=8, out_channels=2).eval()
    missing, unexpected = plain.load_state_dict(net.state_dict(), strict=False)
    assert not missing and unexpected and all(k.startswith("vae_") for k in unexpected)
    x = torch.rand(1, 1, 32, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x), plain(x))


def test_dropout_alias_for_monai_label():
    assert _net(dropout=0.2).dropout_prob == 0.2
