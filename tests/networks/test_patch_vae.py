import pytest
import torch

from livervae.networks import PatchVAE, PatchVAEOutput


@pytest.mark.parametrize("patch_size", [16, 8])
@pytest.mark.parametrize("mask_mode", ["joint", "latent"])
def test_shapes(patch_size, mask_mode):
    net = PatchVAE(patch_size=patch_size, latent_dim=12, mask_mode=mask_mode)
    x = torch.rand(5, 1, patch_size, patch_size)
    out = net.vae_forward(x)
    assert isinstance(out, PatchVAEOutput)
    assert out.recon.shape == out.mask_logits.shape == x.shape
    assert out.coords.shape == (5, 2) and out.mu.shape == out.logvar.shape == (5, 12)
    assert out.class_logits.shape == (5, 2) and net(x).shape == (5, 2)
    assert float(out.recon.min()) >= 0 and float(out.recon.max()) <= 1
    assert float(out.coords.min()) >= 0 and float(out.coords.max()) <= 1
    # the encoder ends at half the patch size (8 x 8 for 16 x 16 patches)
    assert net.encoder[:2](x).shape[-2:] == (patch_size // 2, patch_size // 2)


def test_latent_mode_trains_its_decoder_on_the_detached_latent():
    torch.manual_seed(0)
    net = PatchVAE(patch_size=8, mask_mode="latent")
    net.vae_forward(torch.rand(4, 1, 8, 8)).mask_logits.sum().backward()
    assert all(p.grad is None for p in net.encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.seg_decoder.parameters())
    net.zero_grad()
    joint = PatchVAE(patch_size=8, mask_mode="joint")
    joint.vae_forward(torch.rand(4, 1, 8, 8)).mask_logits.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in joint.encoder.parameters())


def test_eval_is_deterministic_and_sampling_gives_a_variance():
    torch.manual_seed(0)
    net = PatchVAE(patch_size=8).eval()
    x = torch.rand(6, 1, 8, 8)
    assert torch.equal(net(x), net(x))
    sampled = net.predict(x, n_samples=8)
    assert float(sampled["variance"].min()) >= 0 and float(sampled["variance"].max()) > 0
    assert torch.allclose(sampled["probability"], torch.softmax(net(x), 1)[:, 1])  # the score is at z = mu
    single = net.predict(x, n_samples=1)
    assert torch.equal(single["probability"], sampled["probability"]) and not single["variance"].any()
    assert sampled["mask"].shape == (6, 1, 8, 8) and sampled["coords"].shape == (6, 2)
    net.train()
    net.predict(x)
    assert net.training  # predict restores the mode


def test_parameter_groups_and_bad_input():
    net = PatchVAE(patch_size=8)
    vae, cls = {id(p) for p in net.vae_parameters()}, {id(p) for p in net.classifier_parameters()}
    assert vae and cls and not vae & cls and len(vae) + len(cls) == len(list(net.parameters()))
    assert len(net.classifier_parameters(train_encoder=True)) > len(cls)
    with pytest.raises(ValueError, match=r"expects patches of shape \(B, 1, 8, 8\), got \(2, 1, 16, 16\)"):
        net(torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError, match="patch_size must be an even integer"):
        PatchVAE(patch_size=7)
    with pytest.raises(ValueError, match="mask_mode must be one of"):
        PatchVAE(mask_mode="both")


def test_a_frozen_encoder_keeps_its_weights_and_batch_norm_statistics_while_the_classifier_trains():
    torch.manual_seed(0)
    net = PatchVAE(patch_size=8, channels=(4, 8), latent_dim=4, classifier_channels=4, classifier_hidden=8)
    net.freeze_encoder(True)
    net.train()
    encoder = [m for m in (net.encoder, net.fc_mu, net.fc_logvar)]
    assert all(not m.training for m in encoder) and net.classifier.training
    assert all(not p.requires_grad for m in encoder for p in m.parameters())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    optimizer = torch.optim.AdamW(net.classifier_parameters(False), 1e-2)
    x, y = torch.rand(16, 1, 8, 8) * 3 + 1, torch.randint(0, 2, (16,))
    torch.nn.functional.cross_entropy(net(x), y).backward()
    optimizer.step()
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("classifier.") for k in changed)  # running means untouched too
    net.freeze_encoder(False)
    net.train()
    assert net.encoder.training and all(p.requires_grad for p in net.encoder.parameters())
