"""Tissue map to CT: domain-randomised HU per tissue, textures, tumours, acquisition blur, noise, bias, streaks.

SynthSeg-style (Billot et al., Medical Image Analysis 2023), restricted to CT physics: each case draws a
contrast phase and, per tissue, a mean HU within that phase's range (`tissues.HU_RANGES`); fatty livers drop
the parenchyma, cirrhotic ones get a coarse nodular texture. The acquisition is simulated by a Gaussian
point-spread function sized from the drawn in-plane pixel and slice thickness, noise with CT's correlated
texture (white noise low-passed, then scaled to the drawn level), a smooth bias and, on some cases,
beam-hardening streaks between dense objects (bone, contrast).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from livervae.data.synthetic.tissues import (
    CIRRHOTIC_TEXTURE_HU,
    FATTY_LIVER_HU_DROP,
    HU_RANGES,
    PHASES,
    TEXTURE_HU,
    TISSUE_COUNT,
    Tissue,
)
from livervae.data.synthetic.tumours import LesionPaint

HU_MIN, HU_MAX = -1024, 3071


@dataclass(frozen=True)
class Appearance:
    """The drawn appearance of one case.

    Attributes:
        phase: contrast phase.
        liver_state: "normal", "fatty" or "cirrhotic".
        hu: mean HU per tissue code (before texture, blur and noise).
        noise_sd: standard deviation of the added noise (HU).
        noise_grain_vox: low-pass width of the noise (voxels), its texture.
        psf_sigma_mm: Gaussian point-spread function per axis (mm).
        bias_hu: amplitude of the smooth bias field (HU).
        streaks: number of beam-hardening streaks.
    """

    phase: str
    liver_state: str
    hu: np.ndarray
    noise_sd: float
    noise_grain_vox: float
    psf_sigma_mm: tuple[float, float, float]
    bias_hu: float
    streaks: int


def draw_appearance(
    rng: np.random.Generator,
    acquisition_mm: tuple[float, float, float],
    noise_sd_hu: tuple[float, float],
    randomise: bool = True,
) -> Appearance:
    """Draw phase, tissue HU, liver state, noise, point-spread function, bias and streaks for one case.

    With `randomise` False (the ablation without intensity randomisation) every case is portal-venous with
    each tissue at the middle of its range, a normal liver, mid-range noise, no bias and no streaks; the draws
    are made all the same so the rest of the case does not change.
    """
    phase = str(rng.choice(PHASES))
    hu = np.zeros(TISSUE_COUNT, dtype=np.float32)
    for tissue, ranges in HU_RANGES.items():
        hu[tissue] = rng.uniform(*ranges[phase])
    state_draw = rng.random()
    liver_state = "fatty" if state_draw < 0.15 else "cirrhotic" if state_draw < 0.3 else "normal"
    if not randomise:
        phase, liver_state = "portal_venous", "normal"
        for tissue, ranges in HU_RANGES.items():
            hu[tissue] = sum(ranges[phase]) / 2.0
    if liver_state == "fatty":
        hu[Tissue.LIVER] -= rng.uniform(*FATTY_LIVER_HU_DROP)
    hu[Tissue.TUMOR] = hu[Tissue.LIVER]
    in_plane, _, thickness = acquisition_mm
    kernel = rng.uniform(0.2, 0.7)
    psf = (0.5 * in_plane + kernel, 0.5 * in_plane + kernel, 0.42 * thickness + 0.2)
    streaks = int(rng.integers(2, 9)) if rng.random() < 0.35 else 0
    noise_sd, grain, bias = float(rng.uniform(*noise_sd_hu)), float(rng.uniform(0.4, 1.2)), float(rng.uniform(0, 15))
    if not randomise:
        noise_sd, grain, bias, streaks = sum(noise_sd_hu) / 2.0, 0.8, 0.0, 0
    return Appearance(
        phase=phase,
        liver_state=liver_state,
        hu=hu,
        noise_sd=noise_sd,
        noise_grain_vox=grain,
        psf_sigma_mm=tuple(float(v) for v in psf),  # type: ignore[arg-type]
        bias_hu=bias,
        streaks=streaks,
    )


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_vox: np.ndarray) -> np.ndarray:
    """Unit-SD smooth random field, computed on a grid 4x coarser and upsampled to save time."""
    coarse = tuple(max(2, int(np.ceil(n / 4))) for n in shape)
    field = ndimage.gaussian_filter(rng.standard_normal(coarse, dtype=np.float32), sigma=np.maximum(sigma_vox / 4, 0.5))
    field = ndimage.zoom(field, [n / c for n, c in zip(shape, coarse)], order=1, grid_mode=True, mode="nearest")
    field = field[: shape[0], : shape[1], : shape[2]]
    return field / max(float(field.std()), 1e-6)


def _streaks(rng: np.random.Generator, image: np.ndarray, spacing: np.ndarray, count: int) -> None:
    """Dark bands between pairs of dense points on nearby slices, bright tails beyond them (beam hardening)."""
    dense = np.argwhere(image > 300.0)
    if len(dense) < 2:
        return
    ii, jj = np.meshgrid(np.arange(image.shape[0]), np.arange(image.shape[1]), indexing="ij")
    for _ in range(count):
        a = dense[rng.integers(len(dense))]
        near = dense[np.abs(dense[:, 2] - a[2]) <= 1]
        b = near[rng.integers(len(near))]
        if np.all(a[:2] == b[:2]):
            continue
        d = (b[:2] - a[:2]).astype(np.float32)
        length = float(np.linalg.norm(d * spacing[:2]))
        d /= np.linalg.norm(d)
        along = (ii - a[0]) * d[0] + (jj - a[1]) * d[1]
        across = np.abs((ii - a[0]) * d[1] - (jj - a[1]) * d[0]) * spacing[0]
        width = rng.uniform(1.5, 5.0)
        band = np.exp(-0.5 * (across / width) ** 2)
        between = (along >= 0) & (along * spacing[0] <= length)
        pattern = np.where(between, -rng.uniform(20.0, 90.0), rng.uniform(5.0, 40.0) * np.exp(-np.abs(along) / 40.0))
        half = int(rng.integers(0, 3))
        k0, k1 = max(a[2] - half, 0), min(a[2] + half + 1, image.shape[2])
        image[:, :, k0:k1] += (band * pattern).astype(np.float32)[:, :, None]


def render(
    rng: np.random.Generator,
    tissues: np.ndarray,
    affine: np.ndarray,
    appearance: Appearance,
    lesions: list[LesionPaint],
) -> np.ndarray:
    """Render the tissue map as int16 HU in [-1024, 3071]."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    image = appearance.hu[tissues]
    # Tissues do not overlap, so one smooth field textures them all, each with its own amplitude.
    texture = _smooth_noise(rng, tissues.shape, 8.0 / spacing)
    amplitude = np.zeros(len(appearance.hu), dtype=np.float32)
    for tissue, (low, high) in TEXTURE_HU.items():
        amplitude[tissue] = rng.uniform(low, high)
    if appearance.liver_state == "cirrhotic":
        # Regenerative nodules: a coarser, stronger texture of a few millimetres.
        amplitude[Tissue.LIVER] = 0.0
        liver = np.isin(tissues, (Tissue.LIVER, Tissue.TUMOR))
        nodules = _smooth_noise(rng, tissues.shape, 3.0 / spacing)
        image[liver] += rng.uniform(*CIRRHOTIC_TEXTURE_HU) * nodules[liver]
    amplitude[Tissue.TUMOR] = amplitude[Tissue.LIVER]
    image += amplitude[tissues] * texture
    liver_like = np.isin(tissues, (Tissue.LIVER, Tissue.TUMOR, Tissue.HEPATIC_VEIN))
    for paint in lesions:
        image[paint.box] += paint.offset * liver_like[paint.box]
    image = ndimage.gaussian_filter(image, sigma=np.asarray(appearance.psf_sigma_mm) / spacing, truncate=3.0)
    if appearance.streaks:
        _streaks(rng, image, spacing, appearance.streaks)
    image += appearance.bias_hu * _smooth_noise(rng, tissues.shape, 80.0 / spacing)
    noise = ndimage.gaussian_filter(rng.standard_normal(tissues.shape, dtype=np.float32), appearance.noise_grain_vox)
    image += noise * (appearance.noise_sd / max(float(noise.std()), 1e-6))
    return np.clip(np.rint(image), HU_MIN, HU_MAX).astype(np.int16)
