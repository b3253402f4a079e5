import csv
import json

import numpy as np
import pytest

from livervae.metrics.report import SegmentationReport


def test_report_files_and_values(tmp_path, labelled_ct):
    image, label = labelled_ct
    pred = label.array.copy()
    pred[13:16, 11:14, 4:6] = 1  # second lesion missed
    report = SegmentationReport()
    row = report.add("case", pred, label.array, image)
    assert row["liver_dice"] == 1.0 and row["tumor_dice"] == pytest.approx(2 * 18 / (18 + 36))
    assert row["detected_lesions"] == 1 and row["reference_lesions"] == 2
    report.add("perfect", label.array, label.array, image)
    summary = report.write(tmp_path)
    assert summary["tumor_dice_global"] == pytest.approx(2 * (18 + 36) / (18 + 36 + 36 + 36))
    assert summary["lesions"]["recall"] == 0.75
    with open(tmp_path / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["case_id"] for r in rows] == ["case", "perfect"] and rows[1]["tumor_hd95_mm"] == "0"
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["summary"]["cases"] == 2 and sorted(p.name for p in (tmp_path / "overlays").iterdir()) == [
        "case.png",
        "perfect.png",
    ]


def test_shape_mismatch_is_refused(labelled_ct):
    image, label = labelled_ct
    before = label.array.copy()
    report = SegmentationReport()
    with pytest.raises(ValueError, match="differ"):
        report.add("x", label.array[:-1], label.array, image)
    assert np.array_equal(label.array, before)  # the reference is left as it was
    assert report.rows == []  # and nothing half-added to the report


def test_lits_lesion_counts_are_primary_and_any_overlap_secondary(tmp_path, labelled_ct):
    image, label = labelled_ct
    pred = label.array.copy()
    pred[6:16, 5:14, 2:6] = 2  # one blob of 360 voxels over both 18-voxel lesions: IoU 36 / 360
    report = SegmentationReport()
    row = report.add("bridged", pred, label.array, image, keep_overlay=False)
    assert (row["reference_lesions"], row["predicted_lesions"]) == (2, 1)
    assert (row["detected_lesions"], row["false_positive_lesions"]) == (0, 1)
    assert (row["detected_lesions_any_overlap"], row["false_positive_lesions_any_overlap"]) == (2, 0)
    report.add("perfect", label.array, label.array, image, keep_overlay=False)
    summary = report.write(tmp_path, overlays=False)
    lits, lenient = summary["lesions"], summary["lesions_any_overlap"]
    assert lits["min_overlap"] == 0.5 and lits["reference_lesions"] == lenient["reference_lesions"] == 4
    assert (lits["detected"], lits["recall"], lits["precision"]) == (2, 0.5, 2 / 3)
    assert (lenient["detected"], lenient["recall"], lenient["precision"]) == (4, 1.0, 1.0)
    with open(tmp_path / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["detected_lesions"], r["detected_lesions_any_overlap"]) for r in rows] == [("0", "2"), ("2", "2")]
    assert [r["false_positive_lesions"] for r in rows] == ["1", "0"]
    saved = json.loads((tmp_path / "summary.json").read_text())["summary"]
    assert saved["lesions"]["recall"] == 0.5 and saved["lesions_any_overlap"]["recall"] == 1.0
