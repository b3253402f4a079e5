"""Hu-et-al-style tumours in a tissue map: inside the liver, away from vessels, sizes, kinds and margins."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from livervae.data.synthetic.tissues import Tissue
from livervae.data.synthetic.tumours import synthesise_tumours


def _liver_block(vessel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    tissues = np.full((90, 90, 70), Tissue.FAT, dtype=np.uint8)
    zz, yy, xx = np.meshgrid(*(np.arange(n) for n in tissues.shape), indexing="ij")
    ball = ((zz - 45) / 40.0) ** 2 + ((yy - 45) / 40.0) ** 2 + ((xx - 35) / 30.0) ** 2 <= 1.0
    tissues[ball] = Tissue.LIVER
    if vessel:
        tissues[40:50, 40:50, :][ball[40:50, 40:50, :]] = Tissue.HEPATIC_VEIN
    return tissues, np.diag([2.0, 2.0, 2.0, 1.0])


def test_lesions_stay_in_the_liver_away_from_large_vessels():
    tissues, affine = _liver_block()
    liver_before = np.isin(tissues, (Tissue.LIVER, Tissue.HEPATIC_VEIN))
    vessels = tissues == Tissue.HEPATIC_VEIN
    lesions, paints = synthesise_tumours(np.random.default_rng(0), tissues, affine, 4, (2.0, 120.0), (10.0, 30.0), 0.5)
    assert 1 <= len(lesions) == len(paints) <= 4
    tumour = tissues == Tissue.TUMOR
    assert tumour.any() and not np.any(tumour & ~liver_before)
    from_vessels = ndimage.distance_transform_edt(~vessels, sampling=2.0)
    for lesion in lesions:
        centre = np.round(np.asarray(lesion.center_mm) / 2.0).astype(int)
        assert from_vessels[tuple(centre)] >= min(lesion.diameter_mm / 2.0, 15.0) - 1e-6
        assert 2.0 <= lesion.diameter_mm <= 30.0 and lesion.kind in ("hypo", "iso", "hyper", "rim")
    assert lesions[0].diameter_mm == max(lesion.diameter_mm for lesion in lesions)
    assert sum(lesion.n_voxels for lesion in lesions) >= np.count_nonzero(tumour)


def test_blurred_margins_fade_beyond_the_label_and_sharp_ones_stop_at_it():
    for blurred in (0.0, 1.0):
        tissues, affine = _liver_block(vessel=False)
        lesions, paints = synthesise_tumours(
            np.random.default_rng(3), tissues, affine, 1, (2.0, 120.0), (30.0, 30.0), blurred
        )
        (lesion,), (paint,) = lesions, paints
        assert lesion.blurred == bool(blurred)
        region = tissues[paint.box]
        outside = region != Tissue.TUMOR
        # Parenchyma touching the lesion (the renderer adds offsets on liver voxels only).
        ring = (region == Tissue.LIVER) & ndimage.binary_dilation(~outside, iterations=1)
        changed = np.abs(paint.offset[ring]).mean()
        assert (changed > 1.0) if blurred else (changed == 0.0)


def test_no_lesions_without_a_liver_or_when_none_are_asked():
    tissues = np.full((20, 20, 20), Tissue.FAT, dtype=np.uint8)
    assert synthesise_tumours(np.random.default_rng(0), tissues, np.eye(4), 3, (2.0, 120.0), (10.0, 120.0), 0.5) == (
        [],
        [],
    )
    tissues, affine = _liver_block()
    assert synthesise_tumours(np.random.default_rng(0), tissues, affine, 0, (2.0, 120.0), (10.0, 120.0), 0.5) == (
        [],
        [],
    )
    assert not np.any(tissues == Tissue.TUMOR)


def test_a_single_lesion_is_one_component_of_its_recorded_size():
    tissues, affine = _liver_block(vessel=False)
    (lesion,), _ = synthesise_tumours(np.random.default_rng(7), tissues, affine, 1, (2.0, 120.0), (40.0, 40.0), 0.0)
    tumour = tissues == Tissue.TUMOR
    _, n = ndimage.label(tumour, structure=np.ones((3, 3, 3)))
    assert n == 1 and lesion.n_voxels == np.count_nonzero(tumour)
    # Volume-equivalent diameter of the label close to the nominal one (rough surface, voxelised).
    diameter = (6.0 * np.count_nonzero(tumour) * 8.0 / np.pi) ** (1.0 / 3.0)
    assert abs(diameter - lesion.diameter_mm) < 0.2 * lesion.diameter_mm


def test_simple_tumour_model_gives_flat_sharp_lesions_at_the_same_places():
    results = {}
    for model in ("hu2023", "simple"):
        tissues, affine = _liver_block(vessel=False)
        rng = np.random.default_rng(11)
        results[model] = synthesise_tumours(rng, tissues, affine, 3, (2.0, 120.0), (20.0, 40.0), 1.0, model)
    for rich, plain in zip(results["hu2023"][0], results["simple"][0]):
        assert plain.center_mm == rich.center_mm and plain.diameter_mm == rich.diameter_mm
        assert plain.kind in ("hypo", "hyper") and not (plain.blurred or plain.necrotic or plain.capsule)
        assert abs(plain.contrast_hu) >= 20.0
    for paint in results["simple"][1]:
        values = np.unique(paint.offset)
        assert len(values) == 2 and 0.0 in values  # one flat contrast inside, nothing outside
