"""The synthetic phantom cohort: determinism, exact labels, anatomy, appearance and its clinical rows."""

from __future__ import annotations

import json
from dataclasses import asdict

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage, stats

from livervae.data.clinical import compute_severity
from livervae.data.phantom import (
    PhantomConfig,
    PhantomTruth,
    clinical_row,
    generate_case,
    generate_cohort,
)
from livervae.labels import LIVER, TUMOR

SMALL = PhantomConfig.small()
COHORT_SEED = 0
COHORT_SIZE = 16
FULL = np.ones((3, 3, 3), dtype=bool)
KEPT_MASKS = ("body", "vessels", "lungs", "stomach", "spleen", "spine", "kidney_right", "kidney_left")
CLINICAL_COLUMNS = {
    "TCIA_ID",
    "Sex",
    "Age",
    "Tr_Size",
    "tumor_nodul",
    "T_involvment",
    "TNM",
    "BCLC",
    "CLIP_Score",
    "Okuda",
    "AFP",
}


@pytest.fixture(scope="module")
def cohort() -> list[tuple]:
    """16 small-config cases of seed 0 as (image, label, truth, a few masks)."""
    cases = []
    for index in range(COHORT_SIZE):
        image, label, truth, masks = generate_case(index, COHORT_SEED, SMALL, return_masks=True)
        cases.append((image, label, truth, {name: masks[name] for name in KEPT_MASKS}))
    return cases


def _world(volume, ijk: np.ndarray) -> np.ndarray:
    """World (RAS mm) coordinates of voxel indices (n, 3)."""
    return nib.affines.apply_affine(volume.affine, ijk)


def _centroid_mm(volume, mask: np.ndarray) -> np.ndarray:
    return _world(volume, np.array(ndimage.center_of_mass(mask))[None, :])[0]


def test_same_seed_and_index_give_identical_cases() -> None:
    first = generate_case(5, 11, SMALL)
    second = generate_case(5, 11, SMALL)
    np.testing.assert_array_equal(first[0].array, second[0].array)
    np.testing.assert_array_equal(first[1].array, second[1].array)
    np.testing.assert_array_equal(first[0].affine, second[0].affine)
    assert first[2] == second[2]


def test_another_seed_or_index_gives_another_case() -> None:
    image, label, truth = generate_case(5, 11, SMALL)
    other_seed = generate_case(5, 12, SMALL)
    other_index = generate_case(6, 11, SMALL)
    for other in (other_seed, other_index):
        assert other[2] != truth
        assert other[0].shape != image.shape or not np.array_equal(other[0].array, image.array)


def test_a_short_cohort_is_a_prefix_of_a_longer_one() -> None:
    short = list(generate_cohort(3, 4, SMALL))
    long = list(generate_cohort(5, 4, SMALL))
    assert [c.case_id for c in long] == [f"phantom_{i:03d}" for i in range(5)]
    for a, b in zip(short, long):
        assert a.case_id == b.case_id == a.patient_id
        np.testing.assert_array_equal(a.image.array, b.image.array)
        np.testing.assert_array_equal(a.label.array, b.label.array)
        assert a.clinical == b.clinical
        assert a.extra == b.extra


def test_cohort_cases_match_generate_case_so_the_clinical_stream_is_separate() -> None:
    case = next(iter(generate_cohort(1, 9, SMALL)))
    image, label, truth = generate_case(0, 9, SMALL)
    np.testing.assert_array_equal(case.image.array, image.array)
    np.testing.assert_array_equal(case.label.array, label.array)
    assert case.extra["truth"] == asdict(truth)


def test_grid_dtypes_orientation_and_spacing(cohort: list[tuple]) -> None:
    for image, label, truth, _ in cohort:
        assert image.array.dtype == np.int16 and label.array.dtype == np.uint8
        assert image.shape == label.shape == truth.shape
        np.testing.assert_array_equal(image.affine, label.affine)
        assert image.axcodes == "LPS"
        assert image.source == f"phantom:seed={COHORT_SEED}:index={truth.index}"
        sx, sy, sz = image.spacing
        assert sx == pytest.approx(sy) and 2.8 <= sx <= 3.2 and sz in (4.0, 5.0)
        assert sz > sx  # anisotropic: slices thicker than the pixels
        assert truth.spacing == pytest.approx(image.spacing)
        assert -1024 <= int(image.array.min()) <= -900  # air, clipped at the int16 CT floor
        assert int(image.array.max()) <= 3071


def test_label_values_and_lesion_volumes_match_their_nominal_diameters(cohort: list[tuple]) -> None:
    # The known answer is geometry, not the generator's own bookkeeping: a lesion's labelled volume is that of the
    # ellipsoid of its nominal (volume-equivalent) diameter, pi/6 d^3, up to its few-percent irregular outline and
    # the voxel grid.
    checked = 0
    for image, label, truth, _ in cohort:
        values = set(np.unique(label.array).tolist())
        assert values <= {0, 1, 2} and {0, 1} <= values
        components, _ = ndimage.label(label.array == TUMOR, structure=FULL)
        inverse = np.linalg.inv(image.affine)
        for lesion in truth.lesions:
            across = lesion.diameter_mm / min(image.spacing)
            if across < 5:
                continue  # a few voxels across: the grid dominates
            ijk = np.rint(nib.affines.apply_affine(inverse, np.array(lesion.center_mm))).astype(int)
            labelled_mm3 = int((components == components[tuple(ijk)]).sum()) * image.voxel_volume_ml * 1000
            ratio = labelled_mm3 / (np.pi / 6 * lesion.diameter_mm**3)
            assert (0.85 if across < 8 else 0.93) < ratio < (1.15 if across < 8 else 1.08), (truth.index, ratio)
            checked += 1
    assert checked >= 20


def test_each_lesion_is_one_component_inside_the_liver(cohort: list[tuple]) -> None:
    for image, label, truth, _ in cohort:
        tumour = label.array == TUMOR
        # Every tumour voxel's 26-neighbourhood is liver or tumour: lesions never touch the liver surface.
        assert np.all(label.array[ndimage.binary_dilation(tumour, FULL)] >= LIVER)
        components, count = ndimage.label(tumour, structure=FULL)
        assert count == len(truth.lesions)
        inverse = np.linalg.inv(image.affine)
        seen = set()
        for lesion in truth.lesions:
            ijk = np.rint(nib.affines.apply_affine(inverse, np.array(lesion.center_mm))).astype(int)
            component = int(components[tuple(ijk)])
            assert component > 0 and component not in seen
            seen.add(component)
            assert int((components == component).sum()) == lesion.n_voxels


def test_cohort_spans_lesion_sizes_and_appearances(cohort: list[tuple]) -> None:
    lesions = [lesion for _, _, truth, _ in cohort[:12] for lesion in truth.lesions]
    diameters = [lesion.diameter_mm for lesion in lesions]
    assert min(diameters) < 10.0 and max(diameters) > 20.0
    assert any(10.0 <= d <= 20.0 for d in diameters)
    assert {lesion.kind for lesion in lesions} == {"hypo", "hyper"}
    assert {lesion.blurred for lesion in lesions} == {True, False}
    for lesion in lesions:
        if lesion.kind == "hypo":
            assert -60.0 <= lesion.contrast_hu <= -25.0
        else:
            assert 25.0 <= lesion.contrast_hu <= 50.0
    burdens = [truth.burden for _, _, truth, _ in cohort[:8]]
    # Burden is stratified per block of 8: one case in each eighth of [0, 1).
    assert sorted(int(b * 8) for b in burdens) == list(range(8))
    tumor_ml = [truth.tumor_ml for _, _, truth, _ in cohort]
    assert max(tumor_ml) > 20 * min(tumor_ml)


def test_measured_intensities_order_lesions_parenchyma_vessels(cohort: list[tuple]) -> None:
    pooled: dict[str, list[float]] = {"hypo": [], "hyper": []}
    for image, label, truth, masks in cohort:
        hu = image.array.astype(np.float64)
        parenchyma = (label.array == LIVER) & ~masks["vessels"]
        parenchyma_mean = hu[parenchyma].mean()
        assert parenchyma_mean == pytest.approx(truth.parenchyma_hu, abs=8.0)
        assert hu[masks["vessels"]].mean() > parenchyma_mean + 30.0
        components, _ = ndimage.label(label.array == TUMOR, structure=FULL)
        inverse = np.linalg.inv(image.affine)
        for lesion in truth.lesions:
            ijk = np.rint(nib.affines.apply_affine(inverse, np.array(lesion.center_mm))).astype(int)
            difference = hu[components == components[tuple(ijk)]].mean() - parenchyma_mean
            pooled[lesion.kind].append(difference)
            # Lesions of 30+ voxels average the noise out; partial volume shrinks but never flips the contrast.
            if lesion.n_voxels >= 30:
                assert difference < 0 if lesion.kind == "hypo" else difference > 0
    assert np.mean(pooled["hypo"]) < -10.0
    assert np.mean(pooled["hyper"]) > 10.0


def test_anatomy_sides_in_world_coordinates(cohort: list[tuple]) -> None:
    # nibabel's RAS+: +x is the patient's right; LPS storage walks to the left as i grows.
    assert nib.aff2axcodes(np.diag([-1.0, -1.0, 1.0, 1.0])) == ("L", "P", "S")
    for image, label, truth, masks in cohort:
        body = _centroid_mm(image, masks["body"])
        liver = _centroid_mm(image, label.array >= LIVER)
        np.testing.assert_allclose(liver, truth.liver_centroid_mm, atol=1e-2)
        assert liver[0] > body[0] + 20.0  # liver on the patient's right
        assert _centroid_mm(image, masks["spleen"])[0] < body[0] - 40.0  # spleen on the left
        assert _centroid_mm(image, masks["kidney_right"])[0] > body[0] > _centroid_mm(image, masks["kidney_left"])[0]
        assert _centroid_mm(image, masks["spine"])[1] < liver[1]  # spine posterior


def test_air_inside_the_body_is_lung_above_the_liver(cohort: list[tuple]) -> None:
    for image, label, truth, masks in cohort:
        inner = ndimage.binary_erosion(masks["body"], iterations=2)
        stomach = ndimage.binary_dilation(masks["stomach"], iterations=2)
        air = inner & ~stomach & (image.array < -500)
        assert air.any()
        z_air = _world(image, np.argwhere(air))[:, 2]
        assert z_air.min() > truth.liver_centroid_mm[2]
        assert image.array[masks["lungs"]].mean() < -700


def test_default_config_case_has_a_realistic_liver() -> None:
    image, label, truth = generate_case(0, 0)
    sx, sy, sz = image.spacing
    assert 1.3 <= sx <= 1.7 and sz in (2.0, 2.5, 3.0) and sz > sx
    assert 1000.0 <= truth.liver_ml <= 2500.0
    assert image.shape == pytest.approx((360 / sx, 280 / sy, 180 / sz), abs=1)
    assert 100.0 <= truth.parenchyma_hu <= 130.0 and 8.0 <= truth.noise_sd <= 18.0


def test_truth_is_json_serialisable() -> None:
    truth = generate_case(1, 0, SMALL)[2]
    assert isinstance(truth, PhantomTruth)
    restored = json.loads(json.dumps(asdict(truth)))
    assert restored["liver_voxels"] == truth.liver_voxels
    assert len(restored["lesions"]) == len(truth.lesions)
    assert restored["lesions"][0]["n_voxels"] == truth.lesions[0].n_voxels


def test_tumor_free_fraction_one_gives_no_tumor() -> None:
    config = PhantomConfig(inplane_spacing_mm=(2.8, 3.2), slice_thickness_mm=(4.0, 5.0), tumor_free_fraction=1.0)
    image, label, truth = generate_case(7, 0, config)
    assert truth.lesions == () and truth.tumor_voxels == 0 and not np.any(label.array == TUMOR)
    assert truth.liver_voxels > 0


def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        generate_case(-1, 0, SMALL)
    with pytest.raises(ValueError):
        generate_case(0, -3, SMALL)
    with pytest.raises(ValueError):
        PhantomConfig(inplane_spacing_mm=(2.0, 1.0))
    with pytest.raises(ValueError):
        PhantomConfig(tumor_free_fraction=1.5)
    with pytest.raises(ValueError):
        next(iter(generate_cohort(-1, 0, SMALL)))


def test_clinical_rows_use_hcc_tace_seg_columns_and_codings(cohort: list[tuple]) -> None:
    rows = [clinical_row(truth, np.random.default_rng(i)) for i, (_, _, truth, _) in enumerate(cohort)]
    missing = 0
    for row, (_, _, truth, _) in zip(rows, cohort):
        assert set(row) == CLINICAL_COLUMNS
        assert row["TCIA_ID"] == truth.case_id
        largest = max(lesion.diameter_mm for lesion in truth.lesions) / 10.0
        assert row["Tr_Size"] == pytest.approx(largest, rel=0.25, abs=0.1)
        assert row["Sex"] in {"M", "F", None}
        assert row["tumor_nodul"] in {"uninodular", "multinodular", None}
        assert row["T_involvment"] in {"< or = 50%", ">50%", None}
        assert row["TNM"] in {"I", "II", "IIIa", "IIIb", "IIIc", "IVa", "IVb", None}
        assert row["BCLC"] in {"0", "A", "B", "C", "D", None}
        assert row["Okuda"] in {"I", "II", "III", None}
        assert row["CLIP_Score"] is None or 0 <= row["CLIP_Score"] <= 6
        assert row["AFP"] is None or row["AFP"] > 0
        if row["tumor_nodul"] is not None:
            assert row["tumor_nodul"] == ("multinodular" if len(truth.lesions) > 1 else "uninodular")
        missing += sum(value is None for value in row.values())
        compute_severity(row)  # every coding is one the severity indicator accepts
    assert missing > 0  # missing-value handling gets exercised


def test_severity_follows_tumor_burden() -> None:
    severities, tumor_ml = [], []
    for case in generate_cohort(COHORT_SIZE, COHORT_SEED, SMALL):
        severity = compute_severity(case.clinical)
        assert severity.value is not None
        severities.append(severity.value)
        tumor_ml.append(case.extra["truth"]["tumor_ml"])
    assert stats.spearmanr(severities, tumor_ml).statistic >= 0.7
