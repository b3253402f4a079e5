import pytest
import torch
from monai.data import MetaTensor

from livervae.errors import InputError
from livervae.transforms import LiverROICropd, liver_bounding_box


def _data():
    label = torch.zeros(1, 50, 40, 30)
    label[0, 10:20, 5:15, 3:8] = 1
    label[0, 12:14, 6:8, 4:5] = 2
    affine = torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0]))
    image = MetaTensor(torch.arange(50 * 40 * 30, dtype=torch.float32).reshape(1, 50, 40, 30), affine=affine)
    return {"image": image, "label": MetaTensor(label, affine=affine)}


def test_margin_is_in_millimetres_and_geometry_follows():
    out = LiverROICropd(["image", "label"], margin_mm=4.0)(_data())
    # box [10,20) x [5,15) x [3,8) grows by 2, 2 and 2 voxels (4 mm at 2, 2, 3 mm spacing)
    assert tuple(out["image"].shape) == (1, 14, 14, 9)
    assert float(out["label"].sum()) == 500 + 2 * 2  # liver 10*10*5 plus the tumour's extra label value
    assert torch.allclose(out["image"].affine[:3, 3], torch.tensor([16.0, 6.0, 3.0], dtype=torch.float64))
    assert float(out["image"][0, 0, 0, 0]) == float(_data()["image"][0, 8, 3, 1])


def test_jitter_moves_the_box_within_bounds_and_is_seeded():
    def shapes(seed: int, n: int) -> list[tuple[int, ...]]:
        transform = LiverROICropd(["image", "label"], margin_mm=4.0, jitter_mm=6.0)
        transform.set_random_state(seed)
        return [tuple(transform(_data())["image"].shape) for _ in range(n)]

    first = shapes(3, 10)
    assert len(set(first)) > 1 and first == shapes(3, 10)
    assert all(14 - 6 <= s[1] <= 14 + 6 and s[3] <= 30 for s in first)


def test_empty_liver_names_the_file():
    data = _data()
    data["label"] = MetaTensor(torch.zeros(1, 50, 40, 30), meta={"filename_or_obj": "case_7_label.nii.gz"})
    with pytest.raises(InputError, match="case_7_label.nii.gz: empty liver"):
        LiverROICropd(["image", "label"])(data)


def test_bounding_box():
    mask = torch.zeros(1, 5, 6, 7)
    mask[0, 1:3, 2:5, 6] = 1
    start, end = liver_bounding_box(mask)
    assert start.tolist() == [1, 2, 6] and end.tolist() == [3, 5, 7]
