import pytest
import torch

from livervae.data.patches import PatchGrid
from livervae.metrics.patch_auc import PatchMapAUC, map_patch_scores, roc_auc


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
    scores, labels = map_patch_scores(prob, label, PatchGrid(8, 8, min_liver_fraction=0.5))
    assert scores.tolist() == pytest.approx([0.9, 0.2]) and labels.tolist() == [1, 0]
    metric = PatchMapAUC(PatchGrid(8, 8))
    metric.reset()
    metric.update(([torch.cat([1 - prob, prob])], [label]))
    assert metric.compute() == 1.0
    metric.reset()
    metric.update(([torch.cat([1 - prob, prob])], [label.clamp(max=1)]))  # no tumour: undefined, reported 0.5
    assert metric.compute() == 0.5
