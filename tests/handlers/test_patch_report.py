import pytest
import torch

from livervae.handlers.patch_report import summarise, tumor_overlap


def test_summary_pools_patches_and_dice():
    rows = [
        {"patient_id": "a", "score": 0.9, "label": 1},
        {"patient_id": "a", "score": 0.1, "label": 0},
        {"patient_id": "b", "score": 0.2, "label": 0},
        {"patient_id": "b", "score": 0.95, "label": 0},
    ]
    counts = tumor_overlap(torch.tensor([1, 1, 0, 0]), torch.tensor([2, 1, 2, 0]))
    tp, npred, nref = counts.intersection, counts.predicted, counts.reference
    assert (tp, npred, nref) == (1, 2, 2) and counts.dice == 0.5
    cases = [{"dice": 0.5, "tp": tp, "pred": npred, "ref": nref}, {"dice": 1.0, "tp": 0, "pred": 0, "ref": 0}]
    summary = summarise(rows, cases, "unet")
    assert summary["auc_per_patient"] == {"a": 1.0, "b": None} and summary["auc_pooled"] == pytest.approx(2 / 3)
    assert summary["tumor_dice_mean"] == 0.75 and summary["tumor_dice_global"] == 0.5
