import logging

import pytest
import torch
from monai.data import MetaTensor

from livervae.errors import InputError
from livervae.transforms import LiverROICropd, StageOneLiverd


def _case():
    hu = torch.zeros(1, 30, 30, 30)
    hu[0, 5:20, 5:20, 5:20] = 60.0  # what "stage 1" calls liver: a cube, larger than the reference liver
    hu[0, 25:28, 25:28, 25:28] = 60.0  # a smaller false-positive blob, dropped as in the chain
    label = torch.zeros(1, 30, 30, 30)
    label[0, 8:16, 8:16, 8:16] = 1
    affine = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0]))
    return {"image": MetaTensor(hu, affine=affine), "label": MetaTensor(label, affine=affine)}


def threshold_predictor(hu: torch.Tensor) -> torch.Tensor:
    assert hu.shape[:2] == (1, 1)
    return (hu > 30).float()


def test_mask_is_stage_ones_largest_component_on_the_image_grid():
    out = StageOneLiverd("image", threshold_predictor)(_case())
    mask = out["stage1_liver"]
    expected = torch.zeros(1, 30, 30, 30, dtype=torch.uint8)
    expected[0, 5:20, 5:20, 5:20] = 1
    assert torch.equal(mask.as_tensor(), expected)
    assert torch.equal(mask.affine, out["image"].affine)


def test_training_crop_follows_stage_one_not_the_reference():
    data = StageOneLiverd("image", threshold_predictor)(_case())
    crop = LiverROICropd(["image", "label"], source_key="stage1_liver", margin_mm=4.0)(data)
    assert tuple(crop["image"].shape) == (1, 19, 19, 19)  # 15 voxels of stage-1 liver + 2 × 2 margin
    assert float(crop["label"].sum()) == 8**3  # the reference liver is inside, whole


def test_no_liver_from_stage_one_falls_back_to_the_reference(caplog):
    data = _case()
    data["image"].meta["filename_or_obj"] = "case_3_image.nii.gz"
    with caplog.at_level(logging.WARNING):
        out = StageOneLiverd("image", lambda hu: torch.zeros_like(hu))(data)
    assert torch.equal(out["stage1_liver"].as_tensor(), (data["label"] > 0).to(torch.uint8).as_tensor())
    assert "case_3_image.nii.gz: stage 1 found no liver" in caplog.text


def test_a_case_without_a_reference_liver_is_refused():
    data = _case()
    data["label"] = MetaTensor(torch.zeros(1, 30, 30, 30), meta={"filename_or_obj": "case_9_label.nii.gz"})
    with pytest.raises(InputError, match="case_9_label.nii.gz: empty liver"):
        StageOneLiverd("image", threshold_predictor)(data)
