"""`livervae.data.phantom.liver`: a default-config case has a liver of realistic volume on a realistic grid."""

from __future__ import annotations

import pytest

from livervae.data.phantom import generate_case


def test_default_config_case_has_a_realistic_liver() -> None:
    image, label, truth = generate_case(0, 0)
    sx, sy, sz = image.spacing
    assert 1.3 <= sx <= 1.7 and sz in (2.0, 2.5, 3.0) and sz > sx
    assert 1000.0 <= truth.liver_ml <= 2500.0
    assert image.shape == pytest.approx((360 / sx, 280 / sy, 180 / sz), abs=1)
    assert 100.0 <= truth.parenchyma_hu <= 130.0 and 8.0 <= truth.noise_sd <= 18.0
