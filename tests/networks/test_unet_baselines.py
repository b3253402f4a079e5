import pytest
import torch

from livervae.networks import build_unet_baseline


@pytest.mark.parametrize("name", ["unet", "resnet50_unet"])
def test_baselines_build_offline_and_keep_the_slice_size(name):
    net = build_unet_baseline(name, channels=(8, 16, 32)).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 1, 64, 64)).shape == (1, 2, 64, 64)
    if name == "resnet50_unet":  # a ResNet-50 encoder: 23.5 M parameters, randomly initialised
        assert sum(p.numel() for p in net.encoder.parameters()) > 20e6


def test_unknown_baseline():
    with pytest.raises(ValueError, match="unknown baseline 'vgg'"):
        build_unet_baseline("vgg")
