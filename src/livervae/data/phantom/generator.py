"""The phantom orchestrator: `generate_case`, `generate_cohort` and the case ids.

`generate_case` runs the steps of the other modules (grid and anatomy, liver and vessels, intensities, lesions,
rendering), and it alone fixes the order of the random draws: which stream each step draws from and in which
order the steps run. The steps draw only from the generators they are handed (lesion planning also derives the
burden stratum from the seed and index, `lesions._stratum`). Reordering these calls, or adding, removing or
reordering a draw inside any step, changes the cases; `tests/data/phantom/test_generator.py` compares a few cases
with recorded hashes to catch that.

Determinism:
    Case k draws its geometry, intensities and lesions from
    `np.random.default_rng(np.random.SeedSequence([seed, k]))`, its textures and noise from
    `[seed, k, tag]` and its burden stratum from a permutation drawn from `[seed, k // 8, tag]` (non-zero tags
    keep the streams apart), so it is identical whatever the cohort size: a cohort of 4 is a prefix of a
    cohort of 8. Its clinical row uses a further stream, so the row never changes the image. Textures and
    noise draw as many numbers as the grid has voxels, and lesion placement draws last, so the same
    (seed, index) under `PhantomConfig.small()` gives the same patient at a coarser spacing, up to where lesion
    placement draws diverge.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict

import numpy as np
from scipy import ndimage

from livervae.data.case import Case
from livervae.data.phantom.anatomy import (
    _paint_body,
    _paint_great_vessels,
    _paint_organs,
    _paint_ribs,
    _paint_spine,
    _sample_body,
    _sample_grid,
    _Scene,
)
from livervae.data.phantom.clinical_sheet import clinical_row
from livervae.data.phantom.geometry import Box, _Grid
from livervae.data.phantom.intensities import _render, _sample_hu
from livervae.data.phantom.lesions import _paint_lesion, _place_lesions, _plan_lesions
from livervae.data.phantom.liver import _paint_liver, _paint_vessels, _vessel_segments
from livervae.data.phantom.settings import _BLOCK_TAG, _CLINICAL_TAG, PhantomConfig, PhantomLesion, PhantomTruth
from livervae.data.phantom.tissues import _LIVER_CODES, _MASK_CODES, _T
from livervae.io.volume import Volume
from livervae.labels import BACKGROUND, LIVER, TUMOR


def _check_ids(index: int, seed: int) -> None:
    """Refuse negative or non-integer ids (SeedSequence needs non-negative integers)."""
    for name, value in (("index", index), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"phantom {name} must be a non-negative integer, got {value!r}")


def case_id_for(index: int) -> str:
    """The case (and patient) id of phantom case `index`."""
    return f"phantom_{index:03d}"


def generate_case(
    index: int, seed: int, config: PhantomConfig = PhantomConfig(), return_masks: bool = False
) -> tuple[Volume, Volume, PhantomTruth] | tuple[Volume, Volume, PhantomTruth, dict[str, np.ndarray]]:
    """Generate phantom case `index` of cohort `seed`: the CT, its exact label map and the known answers.

    Args:
        index: position in the cohort; case k is the same whatever the cohort size.
        seed: cohort seed.
        config: grid, lesion, contrast and noise settings.
        return_masks: also return boolean masks of the structures ("body", "liver", "tumor", "vessels",
            "portal_vein_extrahepatic", "spleen", "kidneys", "kidney_left", "kidney_right", "stomach",
            "stomach_gas", "gallbladder", "aorta", "ivc", "spine", "ribs", "lungs", "heart", "muscle", "fat").

    Returns:
        (image, label, truth) or (image, label, truth, masks): image int16 HU in [-1024, 3071], label uint8
        (0 background, 1 liver, 2 tumour) on the same LPS-stored grid.
    """
    _check_ids(index, seed)
    index, seed = int(index), int(seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    # Textures and noise depend on the grid size; their own stream keeps the anatomy draws grid-independent.
    texture_rng = np.random.default_rng(np.random.SeedSequence([seed, index, _BLOCK_TAG + 1]))
    affine, shape = _sample_grid(rng, config)
    grid = _Grid.from_affine(affine, shape)
    body = _sample_body(rng, grid, config)
    scene = _Scene(grid, body)
    _paint_body(scene, texture_rng)
    _paint_spine(scene, rng)
    ivc_xy = _paint_great_vessels(scene, rng)
    _paint_ribs(scene, rng)
    _paint_organs(scene, rng)
    liver = _paint_liver(scene, rng)
    _paint_vessels(scene, _vessel_segments(rng, liver, body, ivc_xy))
    lut, draws = _sample_hu(rng, config)
    burden, plans = _plan_lesions(rng, config, seed, index)
    liver_now = np.isin(scene.codes[liver.box], _LIVER_CODES)
    placed = _place_lesions(rng, grid, liver_now, liver.box, plans, config.lesion_diameter_mm[0])
    modulations: list[tuple[Box, np.ndarray]] = []
    lesions: list[PhantomLesion] = []
    for lesion in placed:
        box, modulation, n_voxels = _paint_lesion(scene, lesion)
        modulations.append((box, modulation))
        lesions.append(
            PhantomLesion(
                center_mm=tuple(round(float(v), 4) for v in lesion.center),  # type: ignore[arg-type]
                diameter_mm=round(lesion.diameter, 3),
                kind=lesion.plan.kind,
                blurred=lesion.plan.blurred,
                contrast_hu=round(lesion.plan.contrast, 3),
                n_voxels=n_voxels,
            )
        )
    image_array = _render(scene, lut, draws, modulations, liver.box, texture_rng, config.blur_sigma_vox)

    label_lut = np.full(_T.COUNT, BACKGROUND, dtype=np.uint8)
    label_lut[list(_LIVER_CODES)] = LIVER
    label_lut[_T.TUMOR] = TUMOR
    label_array = label_lut[scene.codes]
    source = f"phantom:seed={seed}:index={index}"
    image = Volume(image_array, affine.copy(), source, {"phantom_seed": seed, "phantom_index": index})
    label = Volume(label_array, affine.copy(), f"{source}:label", {"phantom_seed": seed, "phantom_index": index})

    voxel_ml = image.voxel_volume_ml
    liver_voxels = int(np.count_nonzero(label_array >= LIVER))
    tumor_voxels = int(np.count_nonzero(label_array == TUMOR))
    centroid_ijk = np.array(ndimage.center_of_mass(label_array >= LIVER))
    centroid = affine[:3, :3] @ centroid_ijk + affine[:3, 3]
    truth = PhantomTruth(
        case_id=case_id_for(index),
        seed=seed,
        index=index,
        shape=tuple(int(s) for s in shape),  # type: ignore[arg-type]
        spacing=tuple(float(s) for s in grid.spacing),  # type: ignore[arg-type]
        liver_voxels=liver_voxels,
        tumor_voxels=tumor_voxels,
        vessel_voxels=int(np.count_nonzero((scene.codes == _T.PORTAL) | (scene.codes == _T.HEPATIC))),
        liver_ml=round(liver_voxels * voxel_ml, 6),
        tumor_ml=round(tumor_voxels * voxel_ml, 6),
        parenchyma_hu=round(draws["parenchyma_hu"], 3),
        noise_sd=round(draws["noise_sd"], 3),
        vessel_contrast_hu=round(draws["vessel_contrast_hu"], 3),
        burden=round(burden, 6),
        liver_centroid_mm=tuple(round(float(v), 3) for v in centroid),  # type: ignore[arg-type]
        diaphragm_dome_z_mm=round(float(body.dome_r), 3),
        lesions=tuple(lesions),
    )
    if not return_masks:
        return image, label, truth
    masks = {"body": scene.codes != _T.AIR}
    for name, codes in _MASK_CODES.items():
        masks[name] = np.isin(scene.codes, codes)
    right = (grid.x > np.float32(body.bx))[:, None, None]
    masks["kidney_right"] = masks["kidneys"] & right
    masks["kidney_left"] = masks["kidneys"] & ~right
    return image, label, truth, masks


def generate_cohort(n: int, seed: int, config: PhantomConfig = PhantomConfig()) -> Iterator[Case]:
    """Yield `n` phantom cases lazily, each with its clinical row and its truth in `extra["truth"]`.

    Args:
        n: number of cases (indices 0..n-1).
        seed: cohort seed.
        config: grid, lesion, contrast and noise settings.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"phantom cohort size must be a non-negative integer, got {n!r}")
    _check_ids(0, seed)
    for index in range(int(n)):
        image, label, truth = generate_case(index, seed, config)  # type: ignore[misc]
        row_rng = np.random.default_rng(np.random.SeedSequence([int(seed), index, _CLINICAL_TAG]))
        yield Case(
            case_id=truth.case_id,
            patient_id=truth.case_id,
            image=image,
            label=label,
            clinical=clinical_row(truth, row_rng),
            extra={"truth": asdict(truth)},
        )
