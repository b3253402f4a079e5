"""Rendering: per-tissue HU by phase, noise level, blur and the int16 clip."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from livervae.data.synthetic.rendering import draw_appearance, render
from livervae.data.synthetic.tissues import HU_RANGES, PHASES, Tissue


def test_appearance_draws_every_tissue_within_its_phase_range():
    phases = set()
    for seed in range(40):
        appearance = draw_appearance(np.random.default_rng(seed), (0.8, 0.8, 2.5), (5.0, 35.0))
        phases.add(appearance.phase)
        for tissue, ranges in HU_RANGES.items():
            low, high = ranges[appearance.phase]
            value = appearance.hu[tissue]
            if tissue == Tissue.LIVER and appearance.liver_state == "fatty":
                assert low - 70.0 <= value <= high - 15.0
            elif tissue != Tissue.TUMOR:
                assert low <= value <= high, (tissue.name, appearance.phase, value)
        assert appearance.hu[Tissue.TUMOR] == appearance.hu[Tissue.LIVER]
        assert 5.0 <= appearance.noise_sd <= 35.0
        assert appearance.psf_sigma_mm[2] > appearance.psf_sigma_mm[0]  # a 2.5 mm slice blurs more along z
    assert phases == set(PHASES)


def test_render_gives_the_tissue_means_and_the_drawn_noise_level():
    tissues = np.full((60, 60, 30), Tissue.FAT, dtype=np.uint8)
    tissues[20:50, 20:50, 5:25] = Tissue.LIVER
    appearance = draw_appearance(np.random.default_rng(1), (1.0, 1.0, 1.0), (20.0, 20.0))
    appearance = dataclasses.replace(appearance, bias_hu=0.0, streaks=0, liver_state="normal")
    image = render(np.random.default_rng(2), tissues, np.diag([2.0, 2.0, 2.0, 1.0]), appearance, [])
    assert image.dtype == np.int16
    core = image[25:45, 25:45, 10:20].astype(float)
    assert core.mean() == pytest.approx(appearance.hu[Tissue.LIVER], abs=8.0)
    # Texture and noise together: at least the drawn noise, not wildly more.
    assert 15.0 <= core.std() <= 35.0
    flat = dataclasses.replace(appearance, noise_sd=0.0)
    quiet = render(np.random.default_rng(2), tissues, np.diag([2.0, 2.0, 2.0, 1.0]), flat, [])
    assert quiet[25:45, 25:45, 10:20].std() < core.std()


def test_without_randomisation_every_case_looks_the_same():
    first, second = (draw_appearance(np.random.default_rng(s), (0.8, 0.8, 2.5), (5.0, 35.0), False) for s in (0, 1))
    assert first.phase == second.phase == "portal_venous" and first.liver_state == "normal"
    assert np.array_equal(first.hu, second.hu) and first.noise_sd == second.noise_sd == 20.0
    assert first.bias_hu == 0.0 and first.streaks == 0
    low, high = HU_RANGES[Tissue.LIVER]["portal_venous"]
    assert first.hu[Tissue.LIVER] == pytest.approx((low + high) / 2.0)
