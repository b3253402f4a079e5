import math

import pytest
import torch

from livervae.losses import SeverityLoss


def test_bernoulli_kl_is_zero_at_the_target_and_masks_missing():
    target = torch.tensor([0.3, float("nan"), 0.5, 0.0])
    exact = torch.logit(torch.tensor([0.3, 0.5, 0.5, 1e-6]))
    logit = torch.stack([exact[0], torch.tensor(4.0), exact[2], exact[3]])
    assert float(SeverityLoss()(logit, target)) == pytest.approx(0.0, abs=1e-5)
    off = SeverityLoss()(torch.tensor([0.0, 0.0, 0.0, 0.0]), target)
    expected = (0.3 * math.log(0.3 / 0.5) + 0.7 * math.log(0.7 / 0.5) + 0.0 + math.log(1 / 0.5)) / 3
    assert float(off) == pytest.approx(expected, rel=1e-5)


def test_gradient_does_not_vanish_when_saturated():
    logit = torch.tensor([-30.0], requires_grad=True)
    SeverityLoss()(logit, torch.tensor([0.8])).backward()
    assert float(logit.grad) == pytest.approx(-0.8, rel=1e-3)


def test_all_missing_is_zero_but_keeps_the_graph():
    logit = torch.tensor([0.1, 0.5], requires_grad=True)
    loss = SeverityLoss()(logit, torch.tensor([float("nan"), float("nan")]))
    loss.backward()
    assert float(loss) == 0.0 and torch.equal(logit.grad, torch.zeros(2))


def test_severity_head_learns_the_phantom_indicator():
    """On phantoms (whose indicator follows tumour burden) the weak-supervision term is learnable."""
    import numpy as np

    from livervae.data.clinical import compute_severity
    from livervae.data.phantom import PhantomConfig, generate_cohort
    from livervae.losses import SegVAELoss
    from livervae.networks import SegResNetVAEWithHeads
    from livervae.networks.two_stage import window

    images, labels, targets = [], [], []
    for case in generate_cohort(4, 3, PhantomConfig.small()):
        centre = np.argwhere(case.label.array == 2).mean(axis=0).astype(int)
        start = np.clip(centre - (16, 16, 8), 0, np.asarray(case.image.shape) - (32, 32, 16))
        box = tuple(slice(s, s + n) for s, n in zip(start, (32, 32, 16)))
        images.append(window(torch.as_tensor(case.image.array[box], dtype=torch.float32), -100, 250)[None])
        labels.append(torch.as_tensor(case.label.array[box] == 2, dtype=torch.float32)[None])
        targets.append(compute_severity(case.clinical).value)
    image, label = torch.stack(images), torch.stack(labels)
    target = torch.tensor([float("nan") if t is None else t for t in targets])
    assert int(torch.isfinite(target).sum()) >= 3 and float(target.nanmean()) > 0

    torch.manual_seed(0)
    net = SegResNetVAEWithHeads((32, 32, 16), init_filters=8, out_channels=2, severity_head=True, vae=False).train()
    loss_fn = SegVAELoss(vae_weight=0.0, severity_weight=1.0)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    history = []
    for _ in range(60):
        optimizer.zero_grad()
        out = net(image)
        terms = loss_fn(out.seg, label, None, out.severity_logit, target)
        terms["loss"].backward()
        optimizer.step()
        history.append(float(terms["severity"]))
    assert history[-1] < 0.2 * history[0]
