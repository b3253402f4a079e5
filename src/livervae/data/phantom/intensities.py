"""From tissue map to CT intensities: each tissue's mean HU, textures, lesion contrast, blur and noise.

`_sample_hu` draws the case's look-up table from tissue code to mean HU (portal-venous phase) and the values its
truth reports; `_render` turns the painted scene into the int16 HU image clipped to [HU_MIN, HU_MAX].
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from livervae.data.phantom.anatomy import _Scene
from livervae.data.phantom.geometry import Box, _smooth_field
from livervae.data.phantom.settings import HU_MAX, HU_MIN, PhantomConfig
from livervae.data.phantom.tissues import _LIVER_CODES, _T


def _sample_hu(rng: np.random.Generator, cfg: PhantomConfig) -> tuple[np.ndarray, dict[str, float]]:
    """The per-case mean HU of every tissue code, and the draws the truth reports."""
    parenchyma = rng.uniform(*cfg.parenchyma_hu)
    portal = rng.uniform(*cfg.vessel_contrast_hu)
    hepatic = rng.uniform(*cfg.vessel_contrast_hu)
    cortex = rng.uniform(150.0, 180.0)
    lut = np.zeros(_T.COUNT, dtype=np.float32)
    lut[_T.AIR] = -1000.0
    lut[_T.SKIN] = 20.0
    lut[_T.FAT] = -100.0 + rng.uniform(-10, 10)
    lut[_T.MUSCLE] = rng.uniform(40.0, 50.0)
    lut[_T.VISCERAL_FAT] = -90.0 + rng.uniform(-10, 10)
    lut[_T.BOWEL] = rng.uniform(25.0, 45.0)
    lut[_T.LUNG] = -860.0 + rng.uniform(-20, 20)
    lut[_T.HEART] = 50.0
    lut[_T.KIDNEY_CORTEX] = cortex
    lut[_T.KIDNEY_MEDULLA] = cortex - rng.uniform(20.0, 40.0)
    lut[_T.KIDNEY_SINUS] = -80.0
    lut[_T.SPLEEN] = parenchyma + rng.uniform(0.0, 15.0)
    lut[_T.STOMACH_WALL] = 50.0
    lut[_T.STOMACH_FLUID] = rng.uniform(5.0, 20.0)
    lut[_T.STOMACH_GAS] = -980.0
    lut[_T.GALLBLADDER] = rng.uniform(0.0, 20.0)
    lut[_T.AORTA] = rng.uniform(150.0, 250.0)
    lut[_T.IVC] = rng.uniform(120.0, 160.0)
    lut[_T.PORTAL_EXTRA] = parenchyma + portal
    lut[_T.LIVER] = parenchyma
    lut[_T.PORTAL] = parenchyma + portal
    lut[_T.HEPATIC] = parenchyma + hepatic
    lut[_T.TUMOR] = parenchyma  # lesion contrast is added per lesion
    lut[_T.BONE_MARROW] = lut[_T.RIB_MARROW] = rng.uniform(220.0, 280.0)
    lut[_T.BONE_CORTEX] = lut[_T.RIB_CORTEX] = rng.uniform(650.0, 750.0)
    lut[_T.DISC] = 80.0
    lut[_T.CANAL] = 20.0
    draws = {
        "parenchyma_hu": float(parenchyma),
        "vessel_contrast_hu": float(portal),
        "noise_sd": float(rng.uniform(*cfg.noise_sd_hu)),
        "liver_texture_hu": float(rng.uniform(3.0, 6.0)),
    }
    return lut, draws


def _render(
    scene: _Scene,
    lut: np.ndarray,
    draws: dict[str, float],
    lesions: list[tuple[Box, np.ndarray]],
    liver_box: Box,
    texture_rng: np.random.Generator,
    blur_sigma_vox: float,
) -> np.ndarray:
    """Tissue map to int16 HU: mean values, textures, lesion contrast, partial-volume blur, noise."""
    grid, codes = scene.grid, scene.codes
    hu = lut[codes]
    in_liver = np.isin(codes[liver_box], _LIVER_CODES)
    texture = _smooth_field(texture_rng, tuple(a[b] for a, b in zip((grid.x, grid.y, grid.z), liver_box)), 7.0)
    hu[liver_box] += np.float32(draws["liver_texture_hu"]) * texture * in_liver
    lung_z = grid.box((-np.inf, -np.inf, float(scene.z_dia.min()) + 4.0), (np.inf, np.inf, np.inf))
    if lung_z is not None:
        lungs = codes[lung_z] == _T.LUNG
        if lungs.any():
            field_ = _smooth_field(texture_rng, (grid.x[lung_z[0]], grid.y[lung_z[1]], grid.z[lung_z[2]]), 5.0)
            hu[lung_z] += np.float32(25.0) * field_ * lungs
    for box, modulation in lesions:
        hu[box] += modulation * np.isin(codes[box], _LIVER_CODES)
    if blur_sigma_vox > 0:
        hu = ndimage.gaussian_filter(hu, sigma=blur_sigma_vox, mode="nearest", truncate=3.0)
    hu += texture_rng.standard_normal(hu.shape, dtype=np.float32) * np.float32(draws["noise_sd"])
    return np.clip(np.rint(hu), HU_MIN, HU_MAX).astype(np.int16)
