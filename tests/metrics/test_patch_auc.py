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


def test_threshold_at_sensitivity_finds_the_wanted_share_of_positives():
    from livervae.metrics.patch_auc import threshold_at_sensitivity

    scores, labels = [0.9, 0.8, 0.7, 0.6, 0.5, 0.1], [1, 1, 1, 1, 1, 0]
    assert threshold_at_sensitivity(scores, labels, 0.8) == 0.6  # 4 of 5 positives at or above 0.6
    assert threshold_at_sensitivity(scores, labels, 1.0) == 0.5
    assert threshold_at_sensitivity([float(i) for i in range(10)], [1] * 10, 0.8) == 2.0  # exactly 8 of 10
    assert threshold_at_sensitivity([0.3], [0]) is None


def test_vessel_false_positives_count_bright_tumour_free_patches_above_the_operating_point():
    from livervae.metrics.patch_auc import vessel_false_positives

    def row(score, label, tumour, bright):
        return {"score": score, "label": label, "tumor_fraction": tumour, "bright_fraction": bright}

    rows = [row(0.9, 1, 0.5, 0.0), row(0.7, 1, 0.4, 0.3)]  # tumour patches: the 80 % threshold is 0.7
    rows += [row(0.8, 0, 0.0, 0.2), row(0.75, 0, 0.0, 0.1), row(0.2, 0, 0.0, 0.5)]  # vessel-only: 2 of 3 called
    rows += [row(0.71, 0, 0.0, 0.05), row(0.1, 0, 0.0, 0.0), row(0.1, 0, 0.0, 0.0), row(0.1, 0, 0.0, 0.0)]
    rows += [row(0.95, 0, 0.1, 0.9)]  # some tumour, below the patch threshold: in neither group
    out = vessel_false_positives(rows)
    assert out["threshold"] == 0.7
    assert (out["vessel_patches"], out["vessel_false_positives"]) == (3, 2) and out["vessel_fp_rate"] == 2 / 3
    assert (out["other_patches"], out["other_false_positives"], out["other_fp_rate"]) == (4, 1, 0.25)
    without = vessel_false_positives([{**r, "bright_fraction": ""} for r in rows])
    assert without["vessel_patches"] == 0 and without["vessel_fp_rate"] is None
