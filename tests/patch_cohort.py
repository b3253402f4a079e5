"""A tiny phantom cohort for the patch-model tests: coarse grid, hypodense sharp lesions of 20-45 mm (a clear
tumour signal a short CPU training can learn), written as a normalised dataset."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from livervae.data.phantom import PhantomConfig, generate_cohort
from livervae.data.writer import DatasetWriter

# 3 mm patches of 8 pixels (24 mm), no overlap: a few hundred liver patches per patient.
QUICK = {
    "pixdim": [3.0, 3.0],
    "crop_margin": 8,
    "patch_size": 8,
    "patch_stride": 8,
    "batch_size": 128,
    "latent_dim": 16,
    "channels": [8, 16],
    "cache_rate": 1.0,
}
QUICK_UNET = {**QUICK, "channels": [8, 16, 32], "slice_size": [64, 64], "batch_size": 8}
# Lesions this large at 3 mm always give tumour patches (>= 30 % of 64 pixels) in every patient.
COHORT_CONFIG = replace(
    PhantomConfig.small(),
    lesion_count=(2, 4),
    lesion_diameter_mm=(20.0, 45.0),
    hyper_fraction=0.0,
    blurred_fraction=0.0,
    noise_sd_hu=(6.0, 10.0),
)


def write_cohort(root: Path, n: int = 4, seed: int = 0) -> Path:
    """Write `n` phantom patients under `root` (images/, labels/, datalist.json) and return `root`."""
    writer = DatasetWriter(root, name=root.name, source_format="phantom")
    for case in generate_cohort(n, seed, COHORT_CONFIG):
        writer.add(case)
    writer.finish(n_folds=1, seed=0)
    return root
