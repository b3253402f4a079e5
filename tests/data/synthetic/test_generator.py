"""The label-map generator: determinism, labels, HU range, anatomy relations, volumes, cohort and clinical rows."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from livervae.data.clinical import compute_severity
from livervae.data.synthetic.generator import SyntheticConfig, generate_synthetic_case, generate_synthetic_cohort
from livervae.data.synthetic.rendering import HU_MAX, HU_MIN
from livervae.data.synthetic.tissues import Tissue
from livervae.errors import InputError
from livervae.labels import LIVER, TUMOR


def _world(affine: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.argwhere(mask) @ affine[:3, :3].T + affine[:3, 3]


def test_same_seed_and_index_give_the_same_case_and_others_differ(pool_cases):
    image, label, truth, tissues = pool_cases[1]
    again = generate_synthetic_case(1, 3, SyntheticConfig.training_pool())
    assert np.array_equal(again[0].array, image.array) and np.array_equal(again[1].array, label.array)
    assert np.array_equal(again[0].affine, image.affine) and again[2] == truth
    other = pool_cases[2]
    assert other[0].shape != image.shape or not np.array_equal(other[0].array, image.array)


def test_labels_are_exact_and_images_are_ct_in_hu(pool_cases):
    for image, label, truth, tissues in pool_cases:
        assert image.array.dtype == np.int16 and label.array.dtype == np.uint8
        assert image.same_grid(label) and image.axcodes == "LPS"
        assert set(np.unique(label.array)) <= {0, 1, 2} and np.any(label.array == LIVER)
        assert HU_MIN <= image.array.min() and image.array.max() <= HU_MAX
        assert image.array.min() < -900  # air around the body, as every CT has
        # The label follows the tissue map: liver tissue, intrahepatic vessels and tumours are label >= 1.
        liver_like = np.isin(tissues, (Tissue.LIVER, Tissue.HEPATIC_VEIN, Tissue.TUMOR))
        assert np.array_equal(label.array >= LIVER, liver_like)
        assert np.array_equal(label.array == TUMOR, tissues == Tissue.TUMOR)
        voxel_ml = image.voxel_volume_ml
        assert truth.liver_ml == pytest.approx(np.count_nonzero(label.array >= LIVER) * voxel_ml, abs=1e-3)
        assert truth.tumor_ml == pytest.approx(np.count_nonzero(label.array == TUMOR) * voxel_ml, abs=1e-3)
        assert sum(lesion.n_voxels for lesion in truth.lesions) >= np.count_nonzero(label.array == TUMOR) * 0.5


def test_liver_sits_under_the_right_diaphragm_with_the_kidney_behind_it(pool_cases):
    checked = 0
    for image, label, truth, tissues in pool_cases:
        affine = image.affine
        liver = _world(affine, label.array >= LIVER)
        lungs = tissues == Tissue.LUNG
        spine = _world(affine, tissues == Tissue.BONE)
        kidneys = _world(affine, tissues == Tissue.KIDNEY)
        # RAS: +x patient right, +y anterior, +z superior. The liver lies in the patient's right upper abdomen.
        assert liver[:, 0].mean() > np.median(spine[:, 0])
        right_kidney = kidneys[kidneys[:, 0] > np.median(spine[:, 0])]
        if len(right_kidney) > 100:
            # The right kidney lies behind the liver (posterior) and its top below the liver's top.
            assert right_kidney[:, 1].mean() < liver[:, 1].mean()
            if not truth.liver_cut:
                assert right_kidney[:, 2].max() < liver[:, 2].max()
        if np.count_nonzero(lungs) > 1000 and not truth.liver_cut:
            lung = _world(affine, lungs)
            # The right lung base (diaphragm dome) is above the liver's centre and the liver reaches up to it.
            right_lung = lung[lung[:, 0] > np.median(spine[:, 0])]
            assert np.median(right_lung[:, 2]) > liver[:, 2].mean()
            assert liver[:, 2].max() > right_lung[:, 2].min()
            checked += 1
    assert checked >= 1


def test_intensities_stay_in_the_tissue_ranges_of_the_drawn_phase(pool_cases):
    from livervae.data.synthetic.tissues import HU_RANGES

    for image, label, truth, tissues in pool_cases:
        for tissue in (Tissue.FAT, Tissue.LIVER, Tissue.BONE):
            inner = ndimage.binary_erosion(tissues == tissue, iterations=2)
            if np.count_nonzero(inner) < 200:
                continue
            low, high = HU_RANGES[tissue][truth.phase]
            median = float(np.median(image.array[inner]))
            drop = 75.0 if tissue == Tissue.LIVER and truth.liver_state == "fatty" else 0.0
            # Texture, blur, bias and noise move a median by tens of HU at most.
            assert low - drop - 40.0 <= median <= high + 40.0, (tissue.name, truth.phase, median)


def test_livers_span_realistic_volumes_and_lesions_their_sizes(require_subjects):
    config = dataclasses.replace(SyntheticConfig.training_pool(), subjects=("s0004",), min_spacing_mm=(3.0, 3.0, 3.0))
    volumes, diameters = [], []
    for index in range(6):
        _, _, truth, _ = generate_synthetic_case(index, 5, config)
        if not truth.liver_cut:
            volumes.append(truth.liver_ml)
        diameters += [lesion.diameter_mm for lesion in truth.lesions]
    assert volumes and all(1000.0 <= v <= 2600.0 for v in volumes), volumes
    assert max(volumes) - min(volumes) > 150.0, volumes
    assert min(diameters) >= 2.0 and max(diameters) <= 120.0 and max(diameters) > 20.0


def test_cohort_rows_follow_tumour_burden(require_subjects):
    config = dataclasses.replace(SyntheticConfig.training_pool(), min_spacing_mm=(3.0, 3.0, 3.0))
    cases = list(generate_synthetic_cohort(6, 2, config))
    assert [case.case_id for case in cases] == [f"synthetic_{k:04d}" for k in range(6)]
    burden = [case.extra["truth"]["tumor_ml"] for case in cases]
    severity = [compute_severity(case.clinical).value for case in cases]
    assert np.corrcoef(burden, severity)[0, 1] > 0.3, (burden, severity)


def test_bad_ids_config_and_missing_data_are_refused(tmp_path):
    with pytest.raises(ValueError, match="index"):
        generate_synthetic_case(-1, 0)
    with pytest.raises(ValueError, match="liver_ml"):
        SyntheticConfig(liver_ml=(2000.0, 1000.0))
    with pytest.raises(ValueError, match="cut_liver_fraction"):
        SyntheticConfig(cut_liver_fraction=1.5)
    with pytest.raises(InputError, match="s0004"):
        generate_synthetic_case(0, 0, SyntheticConfig(data_dir=tmp_path, subjects=("s0004",)))
