"""Lesion detection on constructed cases with known answers, by the LiTS criterion and by any overlap."""

import math

import numpy as np
import pytest

from livervae.metrics.lesions import (
    detection_summary,
    equivalent_diameter_mm,
    match_lesions,
    match_lesions_any_overlap,
    match_lesions_lits,
)


def _both(pred: np.ndarray, ref: np.ndarray, voxel_ml: float = 1.0, min_overlap: float = 0.5) -> tuple[dict, dict]:
    """(LiTS summary, any-overlap summary) of one case."""
    matching = match_lesions(pred, ref, voxel_ml, min_overlap)
    lits = detection_summary(matching.reference, matching.predicted)
    lenient = detection_summary(matching.reference_any_overlap, matching.predicted_any_overlap)
    return lits, lenient


def _counts(summary: dict) -> tuple:
    return (
        summary["reference_lesions"],
        summary["predicted_lesions"],
        summary["detected"],
        summary["true_positive_predictions"],
        summary["false_positives"],
        summary["false_negatives"],
    )


def test_one_blob_over_three_lesions_is_one_detection_at_most():
    ref = np.zeros((16, 8, 8), bool)
    for x in (2, 6, 10):
        ref[x : x + 2, 2:4, 2:4] = True  # three separate 8-voxel lesions, 24 voxels
    tight = np.zeros_like(ref)
    tight[2:12, 2:4, 2:4] = True  # 40 voxels over all three: the merged reference has IoU 24 / 40 = 0.6
    lits, lenient = _both(tight, ref)
    assert _counts(lits) == (3, 1, 1, 1, 0, 2) and lits["recall"] == pytest.approx(1 / 3) and lits["precision"] == 1.0
    assert _counts(lenient) == (3, 1, 3, 1, 0, 0) and lenient["recall"] == 1.0 and lenient["precision"] == 1.0
    # The detection is carried by the first reference lesion (equal overlaps: the lowest label).
    assert [lesion.matched for lesion in match_lesions_lits(tight, ref, 1.0)[0]] == [True, False, False]
    loose = np.zeros_like(ref)
    loose[1:13, 1:5, 1:5] = True  # 192 voxels: IoU 24 / 192 = 0.125, no detection at all
    lits, lenient = _both(loose, ref)
    assert _counts(lits) == (3, 1, 0, 0, 1, 3) and lits["recall"] == 0.0 and lits["precision"] == 0.0
    assert _counts(lenient) == (3, 1, 3, 1, 0, 0) and lenient["recall"] == 1.0 and lenient["precision"] == 1.0


def test_touching_reference_lesions_are_one_lesion():
    ref = np.zeros((8, 8, 8), bool)
    ref[2:4, 2:4, 2:4] = True
    ref[4:6, 4:6, 4:6] = True  # touches the first at a corner: one 26-connected lesion of 16 voxels
    lits, lenient = _both(ref.copy(), ref)
    assert _counts(lits) == _counts(lenient) == (1, 1, 1, 1, 0, 0)
    half = np.zeros_like(ref)
    half[2:4, 2:4, 2:4] = True  # only one of the two cubes: IoU 8 / 16 = 0.5, not more than 0.5
    lits, lenient = _both(half, ref)
    assert _counts(lits) == (1, 1, 0, 0, 1, 1) and lits["recall"] == 0.0 and lits["precision"] == 0.0
    assert _counts(lenient) == (1, 1, 1, 1, 0, 0) and lenient["recall"] == 1.0


def test_two_separate_lesions_predicted_as_one():
    ref = np.zeros((10, 6, 6), bool)
    ref[2:4, 2:4, 2:4] = True
    ref[6:8, 2:4, 2:4] = True  # two lesions two voxels apart
    pred = np.zeros_like(ref)
    pred[2:8, 2:4, 2:4] = True  # one bridge of 24 voxels: merged reference 16 voxels, IoU 16 / 24
    lits, lenient = _both(pred, ref)
    assert _counts(lits) == (2, 1, 1, 1, 0, 1) and lits["recall"] == 0.5 and lits["precision"] == 1.0
    assert _counts(lenient) == (2, 1, 2, 1, 0, 0) and lenient["recall"] == 1.0 and lenient["precision"] == 1.0


def test_a_prediction_touching_a_lesion_by_one_voxel():
    ref = np.zeros((10, 10, 10), bool)
    ref[2:5, 2:5, 2:5] = True
    pred = np.zeros_like(ref)
    pred[4:7, 4:7, 4:7] = True  # shares the voxel (4, 4, 4) only: IoU 1 / 53
    lits, lenient = _both(pred, ref)
    assert _counts(lits) == (1, 1, 0, 0, 1, 1) and lits["recall"] == 0.0 and lits["precision"] == 0.0
    assert _counts(lenient) == (1, 1, 1, 1, 0, 0) and lenient["recall"] == 1.0 and lenient["precision"] == 1.0
    # min_overlap 0 is LiTS' "greater zero" variant: any matched pair is a detection.
    lits, _ = _both(pred, ref, min_overlap=0.0)
    assert _counts(lits) == (1, 1, 1, 1, 0, 0)


def test_a_perfect_prediction():
    ref = np.zeros((20, 8, 8), bool)
    ref[1:2, 1:2, 1:2] = True
    ref[4:7, 2:5, 2:5] = True
    ref[10:16, 1:7, 1:7] = True
    lits, lenient = _both(ref.copy(), ref)
    assert _counts(lits) == _counts(lenient) == (3, 3, 3, 3, 0, 0)
    assert lits["recall"] == lits["precision"] == lenient["recall"] == lenient["precision"] == 1.0


def test_a_lesion_predicted_in_two_pieces_is_merged_into_one_detection():
    ref = np.zeros((12, 6, 6), bool)
    ref[2:10, 2:4, 2:4] = True  # 32 voxels
    pred = np.zeros_like(ref)
    pred[2:5, 2:4, 2:4] = True  # 12 voxels: alone IoU 12 / 32 = 0.375
    pred[7:10, 2:4, 2:4] = True  # 12 more, separate; merged IoU 24 / 32 = 0.75
    lits, lenient = _both(pred, ref)
    # LiTS counts FP as predicted components minus detections, so the second piece is a false positive.
    assert _counts(lits) == (1, 2, 1, 1, 1, 0) and lits["recall"] == 1.0 and lits["precision"] == 0.5
    assert _counts(lenient) == (1, 2, 1, 2, 0, 0) and lenient["recall"] == 1.0 and lenient["precision"] == 1.0
    assert [lesion.matched for lesion in match_lesions_lits(pred, ref, 1.0)[1]] == [True, False]


def test_a_prediction_goes_to_the_reference_it_overlaps_most():
    ref = np.zeros((16, 4, 4), bool)
    ref[0:2, 0:2, 0:2] = True  # g1, 8 voxels
    ref[4:14, 0:2, 0:2] = True  # g2, 40 voxels
    pred = np.zeros_like(ref)
    pred[0:8, 0:2, 0:2] = True  # p1: all of g1 (8) and 16 voxels of g2, so it goes to g2
    pred[9:14, 0:2, 0:2] = True  # p2: 20 voxels of g2 (which p2 overlaps most, so g2 is not merged with g1)
    # p1 + p2 against g2: intersection 36, union 52 + 40 - 36 = 56, IoU 0.64; g1 is left unmatched. (Had p1 gone
    # to g1 instead, neither pair would pass: 8 / 32 and 20 / 40.)
    lits, lenient = _both(pred, ref)
    assert _counts(lits) == (2, 2, 1, 1, 1, 1) and lits["recall"] == 0.5 and lits["precision"] == 0.5
    assert _counts(lenient) == (2, 2, 2, 2, 0, 0)
    reference, predicted = match_lesions_lits(pred, ref, 1.0)
    assert [lesion.matched for lesion in reference] == [False, True]
    assert [lesion.matched for lesion in predicted] == [False, True]


@pytest.mark.parametrize(
    "pred_voxels, min_overlap, detected", [(51, 0.5, 1), (50, 0.5, 0), (49, 0.5, 0), (49, 0.4, 1), (100, 0.99, 1)]
)
def test_iou_just_above_and_below_the_threshold(pred_voxels, min_overlap, detected):
    ref = np.zeros((110, 3, 3), bool)
    ref[0:100, 1, 1] = True  # 100 voxels: a prediction of its first n voxels has IoU n / 100
    pred = np.zeros_like(ref)
    pred[0:pred_voxels, 1, 1] = True
    lits, lenient = _both(pred, ref, min_overlap=min_overlap)
    assert _counts(lits) == (1, 1, detected, detected, 1 - detected, 1 - detected)
    assert _counts(lenient) == (1, 1, 1, 1, 0, 0)


def test_empty_reference_and_or_prediction():
    empty = np.zeros((6, 6, 6), bool)
    lesion = empty.copy()
    lesion[1:3, 1:3, 1:3] = True
    for summary in _both(empty, empty):
        assert _counts(summary) == (0, 0, 0, 0, 0, 0)
        assert math.isnan(summary["recall"]) and math.isnan(summary["precision"])
        assert math.isnan(summary["recall_<10mm"]) and math.isnan(summary["precision_>20mm"])
    for summary in _both(lesion, empty):  # a false positive only
        assert _counts(summary) == (0, 1, 0, 0, 1, 0)
        assert math.isnan(summary["recall"]) and summary["precision"] == 0.0
    for summary in _both(empty, lesion):  # a missed lesion only
        assert _counts(summary) == (1, 0, 0, 0, 0, 1)
        assert summary["recall"] == 0.0 and math.isnan(summary["precision"])


def test_recall_and_precision_by_lesion_size():
    # 2 mm voxels (8 mm³): cubes of 3, 6, 9 and 12 voxels a side have equivalent-sphere diameters of 7.4, 14.9,
    # 22.3 and 29.8 mm; only the last is 10 cm³ or more (13.8 mL).
    voxel_ml = 0.008
    ref = np.zeros((80, 16, 16), bool)
    ref[1:4, 1:4, 1:4] = True  # small, detected
    ref[6:12, 1:7, 1:7] = True  # medium, missed
    ref[15:24, 1:10, 1:10] = True  # large, detected
    ref[27:39, 1:13, 1:13] = True  # largest (>= 10 cm³), touched by one voxel only
    pred = np.zeros_like(ref)
    pred[1:4, 1:4, 1:4] = True  # small true positive
    pred[15:24, 1:10, 1:10] = True  # large true positive
    pred[38:41, 12:15, 12:15] = True  # small, shares the voxel (38, 12, 12) with the largest lesion
    pred[45:51, 1:7, 1:7] = True  # medium false positive
    reference, predicted = match_lesions_lits(pred, ref, voxel_ml)
    assert [round(lesion.diameter_mm, 1) for lesion in reference] == [7.4, 14.9, 22.3, 29.8]
    assert reference[3].volume_ml == pytest.approx(13.824)
    lits = detection_summary(reference, predicted)
    assert _counts(lits) == (4, 4, 2, 2, 2, 2)
    assert (lits["recall_<10mm"], lits["recall_10-20mm"], lits["recall_>20mm"]) == (1.0, 0.0, 0.5)
    assert (lits["lesions_<10mm"], lits["lesions_10-20mm"], lits["lesions_>20mm"]) == (1, 1, 2)
    assert (lits["precision_<10mm"], lits["precision_10-20mm"], lits["precision_>20mm"]) == (0.5, 0.0, 1.0)
    assert (lits["predicted_lesions_<10mm"], lits["predicted_lesions_10-20mm"], lits["predicted_lesions_>20mm"]) == (
        2,
        1,
        1,
    )
    assert lits["recall_<10cm3"] == pytest.approx(2 / 3) and lits["recall_>=10cm3"] == 0.0
    assert lits["lesions_<10cm3"] == 3 and lits["lesions_>=10cm3"] == 1
    assert lits["precision_<10cm3"] == 0.5 and lits["predicted_lesions_<10cm3"] == 4
    assert math.isnan(lits["precision_>=10cm3"]) and lits["predicted_lesions_>=10cm3"] == 0
    lenient = detection_summary(*match_lesions_any_overlap(pred, ref, voxel_ml))
    assert _counts(lenient) == (4, 4, 3, 3, 1, 1)
    assert (lenient["recall_<10mm"], lenient["recall_10-20mm"], lenient["recall_>20mm"]) == (1.0, 0.0, 1.0)
    assert lenient["recall_<10cm3"] == pytest.approx(2 / 3) and lenient["recall_>=10cm3"] == 1.0
    assert (lenient["precision_<10mm"], lenient["precision_10-20mm"], lenient["precision_>20mm"]) == (1.0, 0.0, 1.0)


def test_the_combined_matching_equals_the_two_separate_ones():
    rng = np.random.default_rng(3)
    ref = rng.random((12, 12, 6)) < 0.2
    pred = ref ^ (rng.random(ref.shape) < 0.2)
    matching = match_lesions(pred, ref, 0.5)
    assert (matching.reference, matching.predicted) == match_lesions_lits(pred, ref, 0.5)
    assert (matching.reference_any_overlap, matching.predicted_any_overlap) == match_lesions_any_overlap(pred, ref, 0.5)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="differ"):
        match_lesions_lits(np.zeros((2, 2, 2), bool), np.zeros((2, 2, 3), bool), 1.0)
    with pytest.raises(ValueError, match="min_overlap"):
        match_lesions(np.zeros((2, 2, 2), bool), np.zeros((2, 2, 2), bool), 1.0, min_overlap=1.5)


def test_equivalent_diameter():
    assert equivalent_diameter_mm(4 / 3 * math.pi * 5**3 / 1000) == pytest.approx(10.0)
