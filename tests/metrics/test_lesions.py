import math

import numpy as np
import pytest

from livervae.metrics.lesions import detection_summary, equivalent_diameter_mm, match_lesions


def test_matching_and_size_bins():
    ref = np.zeros((40, 40, 40), bool)
    ref[2:4, 2:4, 2:4] = True  # 8 voxels of 1 mL: ESD 24.8 mm, detected
    ref[20:21, 20:21, 20:21] = True  # 1 voxel: ESD 12.4 mm, missed
    pred = np.zeros_like(ref)
    pred[3:6, 3:6, 3:6] = True  # overlaps the first lesion
    pred[30:32, 30:32, 30:32] = True  # false positive
    reference, predicted = match_lesions(pred, ref, voxel_ml=1.0)
    summary = detection_summary(reference, predicted)
    assert summary["reference_lesions"] == 2 and summary["detected"] == 1 and summary["recall"] == 0.5
    assert summary["precision"] == 0.5
    assert summary["recall_>20mm"] == 1.0 and summary["recall_10-20mm"] == 0.0 and math.isnan(summary["recall_<10mm"])
    assert summary["lesions_<10cm3"] == 2 and summary["recall_<10cm3"] == 0.5


def test_equivalent_diameter():
    assert equivalent_diameter_mm(4 / 3 * math.pi * 5**3 / 1000) == pytest.approx(10.0)
