import pytest
import torch
from monai.transforms import Flip

from livervae.transforms import PatchTargetsd, tumor_centre


def test_targets_follow_the_mask():
    mask = torch.zeros(1, 8, 8)
    mask[0, 1:3, 4:8] = 1  # rows 1-2, columns 4-7: 8 of 64 pixels
    out = PatchTargetsd("mask", tumor_threshold=0.125)({"mask": mask})
    assert int(out["label"]) == 1 and float(out["has_tumor"]) == 1.0
    assert out["coords"].tolist() == pytest.approx([(5.5 + 0.5) / 8, (1.5 + 0.5) / 8])  # (x: columns, y: rows)
    flipped = Flip(spatial_axis=1)(mask)  # mirror the columns: x -> 1 - x
    assert tumor_centre(flipped)[0].tolist() == pytest.approx([1 - 0.75, 0.25])
    assert int(PatchTargetsd("mask", tumor_threshold=0.3)({"mask": mask})["label"]) == 0


def test_no_tumor_gives_the_centre_and_no_coordinate_weight():
    out = PatchTargetsd("mask")({"mask": torch.zeros(1, 8, 8)})
    assert out["coords"].tolist() == [0.5, 0.5] and float(out["has_tumor"]) == 0.0 and int(out["label"]) == 0
