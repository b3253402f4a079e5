import pytest
import torch

from livervae.metrics.patch_auc import PatchMapAUC, dice_counts, map_patch_scores, roc_auc, summarise


def test_roc_auc_known_values_and_undefined_cases():
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert roc_auc([0.1, 0.2], [0, 0]) is None and roc_auc([], []) is None


def _slice():
    label = torch.zeros(1, 16, 16)
    label[0, :, :8] = 1
    label[0, :8, :8] = 2
    prob = torch.zeros(1, 16, 16)
    prob[0, :8, :8] = 0.9
    prob[0, 8:, :8] = 0.2
    prob[0, :, 8:] = 1.0  # outside the liver: masked away
    return prob, label


def test_map_scores_are_mean_probability_inside_the_liver():
    prob, label = _slice()
    scores, labels = map_patch_scores(prob, label, patch_size=8, stride=8, min_liver_fraction=0.5)
    assert scores.tolist() == pytest.approx([0.9, 0.2]) and labels.tolist() == [1, 0]
    metric = PatchMapAUC(patch_size=8, stride=8)
    metric.reset()
    metric.update(([torch.cat([1 - prob, prob])], [label]))
    assert metric.compute() == 1.0
    metric.reset()
    metric.update(([torch.cat([1 - prob, prob])], [label.clamp(max=1)]))  # no tumour: undefined, reported 0.5
    assert metric.compute() == 0.5


def test_summary_pools_patches_and_dice():
    rows = [
        {"patient_id": "a", "score": 0.9, "label": 1},
        {"patient_id": "a", "score": 0.1, "label": 0},
        {"patient_id": "b", "score": 0.2, "label": 0},
        {"patient_id": "b", "score": 0.95, "label": 0},
    ]
    tp, npred, nref = dice_counts(torch.tensor([1, 1, 0, 0]), torch.tensor([2, 1, 2, 0]))
    assert (tp, npred, nref) == (1, 2, 2)
    cases = [{"dice": 0.5, "tp": tp, "pred": npred, "ref": nref}, {"dice": 1.0, "tp": 0, "pred": 0, "ref": 0}]
    summary = summarise(rows, cases, "unet")
    assert summary["auc_per_patient"] == {"a": 1.0, "b": None} and summary["auc_pooled"] == pytest.approx(2 / 3)
    assert summary["tumour_dice_mean"] == 0.75 and summary["tumour_dice_global"] == 0.5
