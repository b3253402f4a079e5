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
