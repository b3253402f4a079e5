"""A phantom cohort for the patch VAE study in which every leave-one-patient-out fold is defined.

A fold's patch AUC needs tumour patches in the held-out patient. At the patch bundles' defaults (1.5 mm,
16 x 16 patches, a tumour patch has >= 30 % tumour pixels, i.e. about 170 mm^2 of tumour in one slice) the
generator's lightest burden strata (largest lesion under 10 mm) give none, so a cohort of the first six phantoms
leaves two or three folds undefined. `build_patch_cohort` draws phantoms in index order from the generator and
keeps a phantom only when it has at least `min_tumor_patches` tumour patches on the bundle's patch grid, until
`n_patients` are kept; the lesions stay multifocal and of several sizes (satellites of 15-80 % of the largest),
with the generator's portal and hepatic vessel trees. The skipped indices are written to the dataset's summary.

The tumour patches are counted on the label as the bundle sees it: RAS, in-plane spacing `pixdim` (nearest),
cropped to the liver box with `crop_margin` pixels in-plane, the patch grid anchored at the crop's corner.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import CropForeground, Orientation, Spacing

from livervae.data.patches import PatchGrid, grid_patches
from livervae.data.phantom import PhantomConfig, generate_cohort
from livervae.data.writer import DatasetWriter
from livervae.errors import InputError
from livervae.io.atomic import atomic_directory, write_json_atomic
from livervae.io.volume import Volume
from livervae.labels import LIVER

logger = logging.getLogger(__name__)

# At least two lesions per case, so every patient is multifocal; sizes and appearances as the generator draws them.
STUDY_CONFIG = replace(PhantomConfig(), lesion_count=(2, 6))


def tumor_patch_count(label: Volume, grid: PatchGrid = PatchGrid(), pixdim: float = 1.5, crop_margin: int = 16) -> int:
    """How many tumour patches the patch bundles cut from a 0/1/2 label map at in-plane spacing `pixdim`."""
    tensor = MetaTensor(torch.as_tensor(np.asarray(label.array, dtype=np.float32))[None], affine=label.affine)
    tensor = Orientation(axcodes="RAS")(tensor)
    tensor = Spacing(pixdim=(pixdim, pixdim, -1), mode="nearest")(tensor)
    tensor = CropForeground(margin=(crop_margin, crop_margin, 0), allow_smaller=True)(tensor)
    plain = tensor.as_tensor().round()
    total = 0
    for k in torch.nonzero((plain[0] >= LIVER).sum(dim=(0, 1))).flatten().tolist():
        plane = plain[..., k]
        total += int(grid_patches(torch.zeros_like(plane), plane, grid)["label"].sum())
    return total


def build_patch_cohort(
    out_dir: str | Path,
    n_patients: int = 6,
    grid: PatchGrid = PatchGrid(),
    pixdim: float = 1.5,
    crop_margin: int = 16,
    min_tumor_patches: int = 20,
    seed: int = 0,
    config: PhantomConfig = STUDY_CONFIG,
    max_candidates: int | None = None,
) -> dict[str, Any]:
    """Write a normalised phantom dataset (images/, labels/, datalist.json, summary.json) of `n_patients`
    phantoms that each hold at least `min_tumor_patches` tumour patches; reuse it when `out_dir` already holds
    one built with the same settings. Built in a staging folder (`atomic_directory`) that replaces `out_dir` only
    when complete.

    Returns:
        The cohort record (also `out_dir/patch_cohort.json`): settings, kept phantoms with their tumour-patch
        counts, and the skipped indices with theirs.

    Raises:
        InputError: fewer than `n_patients` qualifying phantoms among the first `max_candidates`
            (default 4 x `n_patients`).
    """
    out = Path(out_dir)
    settings = {
        "n_patients": int(n_patients),
        "patch_size": grid.patch_size,
        "stride": grid.stride,
        "min_liver_fraction": grid.min_liver_fraction,
        "tumor_threshold": grid.tumor_threshold,
        "pixdim": float(pixdim),
        "crop_margin": int(crop_margin),
        "min_tumor_patches": int(min_tumor_patches),
        "seed": int(seed),
        "config": repr(config),
    }
    record_path = out / "patch_cohort.json"
    if record_path.is_file() and (out / "datalist.json").is_file():
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if record.get("settings") == settings:
            return record
    limit = int(max_candidates or 4 * n_patients)
    kept: dict[str, int] = {}
    skipped: dict[str, int] = {}
    with atomic_directory(out, overwrite=True) as staging:
        writer = DatasetWriter(staging, name=out.name, source_format="phantom")
        for case in generate_cohort(limit, seed, config):
            count = tumor_patch_count(case.label, grid, pixdim, crop_margin)
            if count >= min_tumor_patches:
                writer.add(case)
                kept[case.case_id] = count
            else:
                skipped[case.case_id] = count
            logger.info(
                "%s: %d tumour patches (%s)", case.case_id, count, "kept" if case.case_id in kept else "skipped"
            )
            if len(kept) == n_patients:
                break
        if len(kept) < n_patients:
            raise InputError(
                out,
                f"only {len(kept)} of the first {limit} phantoms hold {min_tumor_patches} or more tumour patches "
                f"of {grid.patch_size} px at {pixdim} mm; lower min_tumor_patches or allow more candidates",
            )
        writer.finish(n_folds=1, seed=seed)
        record = {"settings": settings, "kept": kept, "skipped": skipped}
        write_json_atomic(staging / "patch_cohort.json", record)
    return record
