"""Lesion-wise detection: the LiTS challenge criterion (primary) and a lenient any-overlap count (secondary).

Lesions are the 26-connected components of a tumour mask (`livervae.labels.LESION_CONNECTIVITY`), in the
reference and in the prediction, counted separately.

**Primary, LiTS** (`match_lesions_lits`): the detection criterion of the LiTS challenge (Bilic et al., "The
Liver Tumor Segmentation Benchmark (LiTS)", Medical Image Analysis 84, 102680, 2023; `detect_lesions` and the
TP/FP/FN counts of the challenge's evaluation script, github.com/PatrickChrist/LITS-CHALLENGE). Per case:

1. Only predicted lesions that overlap some reference lesion take part in matching.
2. Reference lesions spanned by one predicted lesion are merged: each reference lesion goes to the predicted
   lesion that overlaps it most (ties: the lowest label), and the reference lesions that share that predicted
   lesion become one merged reference lesion.
3. Each overlapping predicted lesion is matched to the merged reference lesion it overlaps most (ties: the one
   holding the lowest reference label), and the predicted lesions matched to the same merged reference lesion
   become one merged predicted lesion.
4. A matched pair is a detection when its intersection over union (merged prediction against merged reference)
   is greater than `min_overlap` (0.5 in LiTS; 0 gives LiTS' "greater zero" variant).
5. TP is the number of detections, FP = predicted lesions - TP, FN = reference lesions - TP, where the lesion
   counts are the raw (unmerged) connected components; precision = TP / predicted lesions and recall =
   TP / reference lesions, so one blob over three reference lesions is at most one detection (recall 1/3 with
   IoU > 0.5) and a lesion predicted in two pieces is one detection plus one false positive.

For the per-lesion records each detection marks one reference lesion detected (the component of the merged
reference lesion that the merged prediction overlaps most) and one predicted lesion a true positive (the
component of the merged prediction that overlaps the merged reference most), so the records add up to the
counts above and recall/precision can be split by lesion size.

Where this differs from the challenge script, knowingly: (a) LiTS labels components with scipy's default
6-connectivity, the project uses 26 everywhere; (b) the script subtracts, for a pair failing the IoU test, the
number of merged reference lesions from the detection count, which can make it negative (fixed the same way in
xmed-lab/TriALS PR 10): here a failing pair simply counts 0; (c) its union is computed on a mask relabelled
with reference ids, which can mix up labels; here it is |merged prediction| + |merged reference| - intersection.

**Secondary, any overlap** (`match_lesions_any_overlap`): a reference lesion is detected when any voxel of it is
predicted tumour; a predicted lesion is a true positive when it overlaps any reference lesion. Lenient: one blob
over three lesions scores recall and precision 1.

Both are summarised by `detection_summary`: recall by reference-lesion size and precision by predicted-lesion
size, by equivalent-sphere diameter (< 10 mm, 10-20 mm, > 20 mm; the sub-centimetre group is where CT models
fail most) and by volume below or from 10 cm³ (the small/large split of the SmoothSegNet evaluation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from livervae.labels import LESION_CONNECTIVITY

DIAMETER_BINS_MM = (("<10mm", 0.0, 10.0), ("10-20mm", 10.0, 20.0), (">20mm", 20.0, math.inf))
VOLUME_BINS_ML = (("<10cm3", 0.0, 10.0), (">=10cm3", 10.0, math.inf))
LITS_MIN_OVERLAP = 0.5


@dataclass(frozen=True)
class Lesion:
    """One reference or predicted lesion (a 26-connected component).

    Attributes:
        volume_ml: the component's volume.
        diameter_mm: the diameter of the sphere of that volume.
        matched: for a reference lesion, counted as detected; for a predicted lesion, counted as a true positive.
    """

    volume_ml: float
    diameter_mm: float
    matched: bool


@dataclass(frozen=True)
class LesionMatching:
    """The lesions of one case under both criteria.

    Attributes:
        reference: reference lesions, `matched` = detected by the LiTS criterion.
        predicted: predicted lesions, `matched` = LiTS true positive.
        reference_any_overlap: reference lesions, `matched` = any voxel predicted.
        predicted_any_overlap: predicted lesions, `matched` = overlaps any reference lesion.
    """

    reference: list[Lesion]
    predicted: list[Lesion]
    reference_any_overlap: list[Lesion]
    predicted_any_overlap: list[Lesion]


def equivalent_diameter_mm(volume_ml: float) -> float:
    """Diameter of the sphere with this volume."""
    return (6.0 * volume_ml * 1000.0 / math.pi) ** (1.0 / 3.0)


@dataclass(frozen=True)
class _Overlap:
    """Connected components of both masks and the voxel counts of every overlapping (predicted, reference) pair."""

    pred_sizes: np.ndarray  # voxels of predicted lesion k at index k - 1
    ref_sizes: np.ndarray
    pairs_pred: np.ndarray  # 0-based predicted index of each overlapping pair, ascending by (pred, ref)
    pairs_ref: np.ndarray
    pairs_voxels: np.ndarray


def _overlap(pred: np.ndarray, ref: np.ndarray) -> _Overlap:
    pred, ref = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {pred.shape} and reference {ref.shape} differ")
    pred_labels, n_pred = ndimage.label(pred, structure=LESION_CONNECTIVITY)
    ref_labels, n_ref = ndimage.label(ref, structure=LESION_CONNECTIVITY)
    pred_sizes = np.bincount(pred_labels.ravel(), minlength=n_pred + 1)[1:]
    ref_sizes = np.bincount(ref_labels.ravel(), minlength=n_ref + 1)[1:]
    both = pred & ref
    codes = pred_labels[both].astype(np.int64) * (n_ref + 1) + ref_labels[both]
    pairs, voxels = np.unique(codes, return_counts=True)
    return _Overlap(pred_sizes, ref_sizes, pairs // (n_ref + 1) - 1, pairs % (n_ref + 1) - 1, voxels)


def _records(sizes: np.ndarray, matched: np.ndarray, voxel_ml: float) -> list[Lesion]:
    return [
        Lesion(float(size) * voxel_ml, equivalent_diameter_mm(float(size) * voxel_ml), bool(hit))
        for size, hit in zip(sizes, matched)
    ]


def _any_overlap(overlap: _Overlap, voxel_ml: float) -> tuple[list[Lesion], list[Lesion]]:
    ref_hit = np.zeros(len(overlap.ref_sizes), dtype=bool)
    ref_hit[overlap.pairs_ref] = True
    pred_hit = np.zeros(len(overlap.pred_sizes), dtype=bool)
    pred_hit[overlap.pairs_pred] = True
    return _records(overlap.ref_sizes, ref_hit, voxel_ml), _records(overlap.pred_sizes, pred_hit, voxel_ml)


def _lits(overlap: _Overlap, voxel_ml: float, min_overlap: float) -> tuple[list[Lesion], list[Lesion]]:
    ref_detected = np.zeros(len(overlap.ref_sizes), dtype=bool)
    pred_true = np.zeros(len(overlap.pred_sizes), dtype=bool)
    if len(overlap.pairs_voxels):
        # Dense intersections over the lesions that overlap at all: rows predicted, columns reference, both ascending.
        rows_id, row = np.unique(overlap.pairs_pred, return_inverse=True)
        cols_id, col = np.unique(overlap.pairs_ref, return_inverse=True)
        inter = np.zeros((len(rows_id), len(cols_id)), dtype=np.int64)
        inter[row, col] = overlap.pairs_voxels
        # np.argmax breaks ties towards the lowest index, i.e. the lowest label, as the LiTS script does.
        # 2. Each reference lesion goes to the prediction overlapping it most; those sharing one are merged. The
        # merged reference lesions are numbered in the order of their lowest label (the tie-break of step 3).
        owner = np.argmax(inter, axis=0)
        _, first_column, ref_group = np.unique(owner, return_index=True, return_inverse=True)
        ref_group = np.argsort(np.argsort(first_column))[ref_group]
        n_groups = len(first_column)
        merged = np.zeros((len(rows_id), n_groups), dtype=np.int64)  # intersections with each merged reference
        np.add.at(merged.T, ref_group, inter.T)
        # 3. Each prediction goes to the merged reference lesion it overlaps most; those sharing one are merged.
        pred_group = np.argmax(merged, axis=1)
        intersection = np.bincount(pred_group, weights=merged[np.arange(len(rows_id)), pred_group], minlength=n_groups)
        pred_voxels = np.bincount(pred_group, weights=overlap.pred_sizes[rows_id], minlength=n_groups)
        ref_voxels = np.bincount(ref_group, weights=overlap.ref_sizes[cols_id], minlength=n_groups)
        # 4. A matched pair is a detection when IoU > min_overlap (a merged reference nobody matched has no pair).
        union = pred_voxels + ref_voxels - intersection
        iou = np.divide(intersection, union, out=np.zeros(n_groups), where=intersection > 0)
        detected = (intersection > 0) & (iou > min_overlap)
        # One reference and one predicted component per detection carry it in the per-lesion records.
        for group in np.flatnonzero(detected):
            members_p = np.flatnonzero(pred_group == group)
            members_g = np.flatnonzero(ref_group == group)
            sub = inter[np.ix_(members_p, members_g)]
            ref_detected[cols_id[members_g[np.argmax(sub.sum(axis=0))]]] = True
            pred_true[rows_id[members_p[np.argmax(sub.sum(axis=1))]]] = True
    return _records(overlap.ref_sizes, ref_detected, voxel_ml), _records(overlap.pred_sizes, pred_true, voxel_ml)


def _check_min_overlap(min_overlap: float) -> None:
    if not 0.0 <= min_overlap <= 1.0:
        raise ValueError(f"min_overlap must be in [0, 1], not {min_overlap}")


def match_lesions_lits(
    pred: np.ndarray, ref: np.ndarray, voxel_ml: float, min_overlap: float = LITS_MIN_OVERLAP
) -> tuple[list[Lesion], list[Lesion]]:
    """Match lesions by the LiTS criterion (see the module docstring), the project's primary lesion metric.

    Args:
        pred: predicted tumour mask (boolean, any shape).
        ref: reference tumour mask, same shape.
        voxel_ml: volume of one voxel in mL.
        min_overlap: a matched pair is a detection when its IoU is greater than this (LiTS: 0.5).

    Returns:
        (reference lesions, `matched` = detected; predicted lesions, `matched` = true positive), each in label
        order; `sum(matched)` is the LiTS TP in both lists.
    """
    _check_min_overlap(min_overlap)
    return _lits(_overlap(pred, ref), voxel_ml, min_overlap)


def match_lesions_any_overlap(pred: np.ndarray, ref: np.ndarray, voxel_ml: float) -> tuple[list[Lesion], list[Lesion]]:
    """Match lesions by any overlap, the lenient secondary count.

    Args:
        pred: predicted tumour mask (boolean, any shape).
        ref: reference tumour mask, same shape.
        voxel_ml: volume of one voxel in mL.

    Returns:
        (reference lesions, `matched` = any voxel predicted; predicted lesions, `matched` = overlaps any
        reference lesion), each in label order.
    """
    return _any_overlap(_overlap(pred, ref), voxel_ml)


def match_lesions(
    pred: np.ndarray, ref: np.ndarray, voxel_ml: float, min_overlap: float = LITS_MIN_OVERLAP
) -> LesionMatching:
    """Both matchings of one case, labelling the components once (what `SegmentationReport` uses).

    Args:
        pred: predicted tumour mask (boolean, any shape).
        ref: reference tumour mask, same shape.
        voxel_ml: volume of one voxel in mL.
        min_overlap: the LiTS IoU threshold.

    Returns:
        The LiTS and the any-overlap lesion records.
    """
    _check_min_overlap(min_overlap)
    overlap = _overlap(pred, ref)
    reference, predicted = _lits(overlap, voxel_ml, min_overlap)
    return LesionMatching(reference, predicted, *_any_overlap(overlap, voxel_ml))


def detection_summary(reference: list[Lesion], predicted: list[Lesion]) -> dict[str, float | int]:
    """Counts, precision and recall, overall and per size bin, over any number of cases' lesions.

    Works for either criterion: it only counts `matched`. Recall per bin is over the reference lesions of that
    size (`lesions_<bin>` of them), precision per bin over the predicted lesions of that size
    (`predicted_lesions_<bin>`); a ratio over no lesions is NaN.

    Args:
        reference: reference lesions (`matched` = detected).
        predicted: predicted lesions (`matched` = true positive).

    Returns:
        reference_lesions, predicted_lesions, detected, true_positive_predictions, false_positives,
        false_negatives, recall, precision, and recall_<bin>, lesions_<bin>, precision_<bin>,
        predicted_lesions_<bin> for each diameter and volume bin.
    """
    detected = sum(lesion.matched for lesion in reference)
    true_positive = sum(lesion.matched for lesion in predicted)
    summary: dict[str, float | int] = {
        "reference_lesions": len(reference),
        "predicted_lesions": len(predicted),
        "detected": detected,
        "true_positive_predictions": true_positive,
        "false_positives": len(predicted) - true_positive,
        "false_negatives": len(reference) - detected,
        "recall": _ratio(detected, len(reference)),
        "precision": _ratio(true_positive, len(predicted)),
    }
    bins = [(name, low, high, "diameter_mm") for name, low, high in DIAMETER_BINS_MM]
    bins += [(name, low, high, "volume_ml") for name, low, high in VOLUME_BINS_ML]
    for name, low, high, attribute in bins:
        group = [lesion for lesion in reference if low <= getattr(lesion, attribute) < high]
        summary[f"recall_{name}"] = _ratio(sum(lesion.matched for lesion in group), len(group))
        summary[f"lesions_{name}"] = len(group)
        group = [lesion for lesion in predicted if low <= getattr(lesion, attribute) < high]
        summary[f"precision_{name}"] = _ratio(sum(lesion.matched for lesion in group), len(group))
        summary[f"predicted_lesions_{name}"] = len(group)
    return summary


def _ratio(numerator: int, denominator: int) -> float:
    return math.nan if denominator == 0 else numerator / denominator
