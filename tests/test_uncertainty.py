"""Voxel maps, expected Dice, case quality, the map file and the calibration record, against known answers."""

from __future__ import annotations

import json
import math

import nibabel as nib
import numpy as np
import pytest
import torch

from livervae.bundle import file_sha256
from livervae.networks.two_stage import compose_classes, temper
from livervae.uncertainty import (
    UNCERTAINTY_CHANNELS,
    UncertaintySettings,
    calibrated_maps,
    case_quality,
    expected_dice,
    load_uncertainty_settings,
    normalised_entropy,
    save_uncertainty_map,
    stages_from_classes,
    voxel_maps,
    without_dropped_tumours,
)


def _stages(seed: int = 0, shape=(6, 5, 4)) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).random((2, *shape)).astype(np.float32))


def test_entropy_is_zero_when_certain_and_one_when_uniform():
    certain = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    uniform = torch.full((3, 2), 1.0 / 3.0)
    assert torch.allclose(normalised_entropy(certain), torch.zeros(2), atol=1e-5)
    assert torch.allclose(normalised_entropy(uniform), torch.ones(2), atol=1e-6)
    half = torch.tensor([[0.5], [0.5], [0.0]])
    assert float(normalised_entropy(half)[0]) == pytest.approx(math.log(2) / math.log(3), abs=1e-5)


def test_voxel_maps_hold_one_minus_background_tumour_and_the_class_entropy():
    liver, tumour = _stages()
    maps = voxel_maps(liver, tumour)
    classes = compose_classes(liver[None, None], tumour[None, None])[0]
    assert maps.shape == (3, 6, 5, 4)
    assert torch.allclose(maps[0], tumour + (1 - tumour) * liver, atol=1e-6)
    assert torch.allclose(maps[1], tumour)
    assert torch.allclose(maps[2], normalised_entropy(classes))


def test_stage_probabilities_come_back_from_the_composed_classes():
    stages = _stages(1)
    classes = compose_classes(stages[0][None, None], stages[1][None, None])[0]
    assert torch.allclose(stages_from_classes(classes), stages, atol=1e-5)


def test_calibrated_maps_apply_each_stage_temperature():
    stages = _stages(2)
    maps = calibrated_maps(stages.numpy(), UncertaintySettings(liver_temperature=0.5, tumor_temperature=2.0))
    expected = voxel_maps(temper(stages[0], 0.5), temper(stages[1], 2.0)).numpy()
    np.testing.assert_allclose(maps, expected, atol=1e-6)
    np.testing.assert_allclose(calibrated_maps(stages, UncertaintySettings()), voxel_maps(*stages).numpy())


def test_platt_calibration_adds_its_bias_to_the_tempered_logit():
    stages = _stages(5)
    settings = UncertaintySettings(liver_temperature=0.5, tumor_temperature=2.0, liver_bias=-1.0, tumor_bias=0.5)
    maps = calibrated_maps(stages, settings)
    p = stages.clamp(1e-6, 1 - 1e-6)
    liver = torch.sigmoid(torch.logit(p[0]) / 0.5 - 1.0)
    tumour = torch.sigmoid(torch.logit(p[1]) / 2.0 + 0.5)
    np.testing.assert_allclose(maps, voxel_maps(liver, tumour).numpy(), atol=1e-6)


def test_expected_dice_known_answers():
    mask = np.zeros((10, 10), bool)
    mask[2:6, 2:6] = True
    assert expected_dice(mask.astype(float), mask) == pytest.approx(1.0)
    assert expected_dice(np.where(mask, 0.5, 0.0), mask) == pytest.approx(2 * 8 / (8 + 16))
    spread = np.where(mask, 1.0, 0.1)  # 84 background voxels at 0.1 add 8.4 of mass
    assert expected_dice(spread, mask) == pytest.approx(2 * 16 / (16 + 8.4 + 16))
    empty = np.zeros((10, 10), bool)
    assert expected_dice(np.zeros((10, 10)), empty) == 1.0
    # nothing predicted: the chance there is nothing to find, however the doubt is spread
    assert expected_dice(np.where(mask, 0.3, 0.01), empty) == pytest.approx(0.7)
    assert expected_dice(np.where(mask, 1.0, 0.0), empty) == 0.0  # a certain finding missed


def test_case_quality_flags_a_low_score_and_a_ct_unlike_the_training_data():
    label = np.zeros((12, 12, 12), np.uint8)
    label[2:10, 2:10, 2:10] = 1
    label[4:6, 4:6, 4:6] = 2
    maps = np.zeros((3, 12, 12, 12), np.float32)
    maps[0] = label >= 1
    maps[1] = label == 2
    settings = UncertaintySettings(reference_reconstruction_loss=0.1)
    good = case_quality(maps, label, 0.12, settings)
    assert good.score == pytest.approx(1.0) and not good.needs_review and good.reasons == ()
    assert good.reconstruction_ratio == pytest.approx(1.2)
    unsure = maps.copy()
    unsure[1] = np.where(label == 2, 0.3, 0.0)
    low = case_quality(unsure, label, 0.12, settings)
    assert low.tumor_expected_dice == pytest.approx(2 * 0.3 * 8 / (0.3 * 8 + 8))
    assert low.needs_review and low.reasons == (f"expected tumour Dice {low.tumor_expected_dice:.2f} < 0.50",)
    fine = maps.copy()
    fine[1] = np.where(label == 2, 0.6, 0.0)  # expected tumour Dice 0.75: above the tumour threshold
    assert not case_quality(fine, label, 0.12, settings).needs_review
    odd = case_quality(maps, label, 0.2, settings)
    assert odd.needs_review and "unlike the training data" in odd.reasons[0]
    assert case_quality(maps, label, 0.2, UncertaintySettings()).reconstruction_ratio is None
    assert set(good.to_dict()) >= {"score", "needs_review", "reasons", "reconstruction_ratio"}


def test_removed_tumours_do_not_count_as_missed_but_the_models_own_doubt_does():
    label = np.zeros((20, 20, 20), np.uint8)
    label[2:18, 2:18, 2:18] = 1
    label[4:8, 4:8, 4:8] = 2  # the kept tumour
    maps = np.zeros((3, 20, 20, 20), np.float32)
    maps[0] = label >= 1
    maps[1] = np.where(label == 2, 0.9, 0.0)
    maps[1][3:9, 3:9, 3:9] = np.maximum(maps[1][3:9, 3:9, 3:9], 0.2)  # the kept tumour's halo stays
    maps[1][13:15, 13:15, 13:15] = 0.8  # a speck post-processing relabelled as liver ...
    maps[1][12:16, 12:16, 12:16] = np.maximum(maps[1][12:16, 12:16, 12:16], 0.1)  # ... with its halo
    cleaned = without_dropped_tumours(maps[1], label == 2)
    assert cleaned[12:16, 12:16, 12:16].max() == 0.0
    np.testing.assert_array_equal(cleaned[:10, :10, :10], maps[1][:10, :10, :10])
    kept_mass = 0.9 * 64 + 0.2 * (216 - 64)
    assert case_quality(maps, label).tumor_expected_dice == pytest.approx(2 * 0.9 * 64 / (kept_mass + 64))
    doubt = maps.copy()
    doubt[1][13:15, 13:15, 13:15] = 0.3  # never predicted tumour (< 1/3): a lesion the model may have missed
    doubt_mass = kept_mass + 0.3 * 8 + 0.1 * (64 - 8)
    assert case_quality(doubt, label).tumor_expected_dice == pytest.approx(2 * 0.9 * 64 / (doubt_mass + 64))
    tumour_free = np.where(label == 2, 1, label).astype(np.uint8)  # every tumour removed: nothing left to miss
    assert case_quality(maps, tumour_free).tumor_expected_dice == 1.0
    assert case_quality(doubt, tumour_free).tumor_expected_dice == pytest.approx(0.7)  # the 0.3 speck remains
    np.testing.assert_array_equal(without_dropped_tumours(np.zeros((4, 4, 4)), np.zeros((4, 4, 4), bool)), 0.0)
    with pytest.raises(ValueError, match="differ in shape"):
        without_dropped_tumours(maps[1], label[:5] == 2)


def test_uncertainty_map_file_round_trips_with_its_channels_and_affine(tmp_path):
    maps = calibrated_maps(_stages(3, (9, 8, 7)), UncertaintySettings())
    affine = np.array([[-0.7, 0, 0, 10.0], [0, -0.7, 0, 20.0], [0, 0, 2.5, -30.0], [0, 0, 0, 1]])
    path = save_uncertainty_map(maps, affine, tmp_path / "case_uncertainty.nii.gz")
    img = nib.load(str(path))
    assert img.shape == (9, 8, 7, len(UNCERTAINTY_CHANNELS)) and img.get_data_dtype() == np.uint8
    np.testing.assert_allclose(img.affine, affine)
    np.testing.assert_allclose(np.moveaxis(img.get_fdata(), -1, 0), maps, atol=0.5 / 255 + 1e-6)
    with pytest.raises(ValueError, match="maps must be"):
        save_uncertainty_map(maps[:2], affine, tmp_path / "bad.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case_uncertainty.nii.gz"]


def test_calibration_applies_only_to_the_weights_and_passes_it_was_recorded_for(tmp_path):
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")
    other = tmp_path / "other.pt"
    other.write_bytes(b"other weights")
    passes = {"flips": [], "hu_shifts": [], "mc_samples": 1}
    record = {
        "liver_temperature": 0.4,
        "tumor_temperature": 0.8,
        "liver_bias": -1.5,
        "tumor_bias": 0.25,
        "reference_reconstruction_loss": 0.07,
        "passes": passes,
        "model_sha256": file_sha256(model),
    }
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps({"uncertainty_calibration": record}))
    used = load_uncertainty_settings(metadata, model, passes, 0.8, 0.4, 2.0)
    assert used == UncertaintySettings(0.4, 0.8, 0.8, 0.4, 2.0, 0.07, -1.5, 0.25)
    assert load_uncertainty_settings(metadata, other, passes) == UncertaintySettings()
    shifted = {"flips": [], "hu_shifts": [-25, 25], "mc_samples": 1}
    assert load_uncertainty_settings(metadata, model, shifted) == UncertaintySettings()
    metadata.write_text("{}")
    assert load_uncertainty_settings(metadata, model, passes) == UncertaintySettings()
