"""Calibration error, temperature fitting and the rank AUROC against known answers and MONAI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics import compute_roc_auc

from livervae.metrics.calibration import (
    binary_nll,
    expected_calibration_error,
    fit_platt,
    fit_temperature,
    rank_auroc,
    sample_voxels,
    top_label,
)


def test_ece_of_a_calibrated_predictor_is_near_zero_and_of_an_overconfident_one_is_the_gap():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 200_000)
    correct = rng.random(confidence.size) < confidence
    assert expected_calibration_error(confidence, correct) < 0.01
    # Always 90 % sure, right 60 % of the time: ECE 0.3 exactly.
    sure = np.full(1000, 0.9)
    right = np.arange(1000) < 600
    assert expected_calibration_error(sure, right) == pytest.approx(0.3)
    assert np.isnan(expected_calibration_error(np.array([]), np.array([], bool)))


def test_top_label_takes_the_argmax_and_its_probability():
    classes = np.array([[0.2, 0.7], [0.5, 0.2], [0.3, 0.1]])
    predicted, confidence = top_label(classes)
    assert predicted.tolist() == [1, 0] and confidence.tolist() == [0.5, 0.7]


def test_fit_temperature_recovers_the_temperature_that_made_the_probabilities_overconfident():
    rng = np.random.default_rng(1)
    logits = rng.normal(0.0, 2.0, 400_000)
    target = rng.random(logits.size) < 1.0 / (1.0 + np.exp(-logits))
    overconfident = 1.0 / (1.0 + np.exp(-2.5 * logits))
    assert fit_temperature(overconfident, target) == pytest.approx(2.5, rel=0.06)
    calibrated = 1.0 / (1.0 + np.exp(-logits))
    assert fit_temperature(calibrated, target) == pytest.approx(1.0, rel=0.06)
    tempered = 1.0 / (1.0 + np.exp(-2.5 * logits / fit_temperature(overconfident, target)))
    assert binary_nll(tempered, target) < binary_nll(overconfident, target)


def test_rank_auroc_equals_monai_with_ties_and_is_none_without_both_classes():
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 5, 300).astype(float)  # many ties
    labels = rng.random(300) < 0.3
    expected = float(compute_roc_auc(torch.as_tensor(scores), torch.as_tensor(labels.astype(np.int64))))
    assert rank_auroc(scores, labels) == pytest.approx(expected)
    assert rank_auroc(np.arange(4.0), np.array([0, 0, 1, 1], bool)) == 1.0
    assert rank_auroc(np.arange(4.0), np.zeros(4, bool)) is None


def test_sample_voxels_is_seeded_inside_the_mask_and_keeps_small_masks_whole():
    mask = np.zeros((20, 20, 20), bool)
    mask[5:15, 5:15, 5:15] = True
    drawn = sample_voxels(mask, 100, seed=3)
    assert drawn.size == 100 and np.unique(drawn).size == 100 and mask.ravel()[drawn].all()
    assert np.array_equal(drawn, sample_voxels(mask, 100, seed=3))
    assert np.array_equal(sample_voxels(mask, 5000), np.flatnonzero(mask))


def test_fit_platt_recovers_temperature_and_bias_of_a_shifted_overconfident_predictor():
    rng = np.random.default_rng(4)
    logits = rng.normal(0.0, 2.0, 400_000)
    target = rng.random(logits.size) < 1.0 / (1.0 + np.exp(-logits))
    # the model's logit is 2.5 z + 1: sigmoid(logit / 2.5 - 0.4) gives back the true probability
    shifted = 1.0 / (1.0 + np.exp(-(2.5 * logits + 1.0)))
    temperature, bias = fit_platt(shifted, target)
    assert temperature == pytest.approx(2.5, rel=0.05) and bias == pytest.approx(-0.4, abs=0.03)
    with pytest.raises(ValueError, match="backwards"):
        fit_platt(1.0 - shifted, target)
