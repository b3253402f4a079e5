import numpy as np
import pytest

from livervae.data.summary import lesion_volumes_ml, summarise_case


def test_known_volumes_and_lesions(labelled_ct):
    image, label = labelled_ct
    summary = summarise_case(image, label.array)
    voxel_ml = 0.9 * 0.9 * 2.5 / 1000
    assert summary["liver_voxels"] == 13 * 12 * 6
    assert summary["tumor_voxels"] == 2 * 3 * 3 * 2
    assert summary["label_voxels"] == {"background": 24 * 20 * 8 - 13 * 12 * 6, "liver": 13 * 12 * 6 - 36, "tumor": 36}
    assert summary["liver_ml"] == pytest.approx(13 * 12 * 6 * voxel_ml, abs=0.01)
    assert summary["lesion_count"] == 2
    assert summary["lesion_volumes_ml"] == pytest.approx([18 * voxel_ml, 18 * voxel_ml], abs=1e-3)
    assert summary["orientation"] == "LPS" and summary["spacing_mm"] == [0.9, 0.9, 2.5]
    assert summary["hu_range"] == [float(image.array.min()), float(image.array.max())]


def test_diagonal_neighbours_form_one_lesion():
    tumour = np.zeros((5, 5, 5), bool)
    tumour[1, 1, 1] = tumour[2, 2, 2] = True
    assert len(lesion_volumes_ml(tumour, 1.0)) == 1


def test_unlabelled_case(ct_volume):
    summary = summarise_case(ct_volume, None)
    assert summary["labelled"] is False and "liver_ml" not in summary
