import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from livervae.data.patches import (
    PatchGrid,
    balance_patients,
    count_patches,
    extract_patches,
    fold_data,
    grid_patches,
    liver_slices,
)
from livervae.errors import InputError


def _slice(h=40, w=36, liver=True):
    image = torch.rand(1, h, w)
    label = torch.ones(1, h, w) if liver else torch.zeros(1, h, w)
    return image, label


def test_grid_follows_size_and_stride_exactly():
    image, label = _slice()
    grid = grid_patches(image, label, PatchGrid(16, 8, min_liver_fraction=0.0))
    rows, cols = grid["location"][:, 0].tolist(), grid["location"][:, 1].tolist()
    assert sorted(set(rows)) == [0, 8, 16, 24] and sorted(set(cols)) == [0, 8, 16] and len(rows) == 12
    # any stride: MONAI's step is round(p * (1 - overlap)), which our overlap makes exactly the stride
    grid = grid_patches(image, label, PatchGrid(16, 5, min_liver_fraction=0.0))
    assert sorted(set(grid["location"][:, 0].tolist())) == [0, 5, 10, 15, 20]
    row, col = grid["location"][7].tolist()
    assert torch.equal(grid["image"][7], image[:, row : row + 16, col : col + 16])


def test_tumor_label_is_at_least_thirty_percent_exactly():
    image, label = _slice(16, 16)
    flat = label.view(-1)
    flat[:76] = 2  # 76 / 256 = 29.7 %
    assert int(grid_patches(image, label, PatchGrid(16, 16))["label"][0]) == 0
    flat[76] = 2  # 77 / 256 = 30.1 %
    grid = grid_patches(image, label, PatchGrid(16, 16))
    assert int(grid["label"][0]) == 1 and float(grid["tumor_fraction"][0]) == pytest.approx(77 / 256)
    assert int(grid["mask"][0].sum()) == 77
    # a threshold of exactly 25 %: 64 of 256 pixels qualify
    label.view(-1)[64:] = 1
    assert int(grid_patches(image, label, PatchGrid(16, 16, tumor_threshold=0.25))["label"][0]) == 1


def test_only_liver_patches_are_kept():
    image, label = _slice(32, 32, liver=False)
    label[0, :16, :24] = 1  # patch (0, 0) all liver, patch (0, 16) half liver, bottom row none
    grid = grid_patches(image, label, PatchGrid(16, 16, min_liver_fraction=0.5))
    assert grid["location"].tolist() == [[0, 0], [0, 16]]
    grid = grid_patches(image, label, PatchGrid(16, 16, min_liver_fraction=0.6))
    assert grid["location"].tolist() == [[0, 0]]


def test_bad_patch_settings_are_refused():
    image, label = _slice()
    with pytest.raises(InputError, match="stride must be an integer in 1..patch_size"):
        PatchGrid(16, 17)
    with pytest.raises(InputError, match="patch_size must be an even integer"):
        PatchGrid(15, 5)
    with pytest.raises(InputError, match="must be \\(C, H, W\\)"):
        grid_patches(image, label[0], PatchGrid(16, 8))
    with pytest.raises(InputError, match="tumor_threshold must lie in"):
        PatchGrid(16, 8, tumor_threshold=0.0)


def _volume(name, liver_slices_=(2, 3, 4, 5), depth=8, tumour=False):
    image = MetaTensor(torch.rand(1, 24, 24, depth), meta={"filename_or_obj": name})
    label = MetaTensor(torch.zeros(1, 24, 24, depth), meta={"filename_or_obj": name})
    for k in liver_slices_:
        label[0, 8:24, 0:16, k] = 1  # exactly four 8 x 8 patches of liver per slice
        if tumour:
            label[0, 8:16, 0:8, k] = 2  # one of them tumour
    return {"image": image, "label": label, "patient_id": name, "case_id": name}


def test_liver_slices_cut_the_axial_slices_with_liver():
    slices = liver_slices([_volume("a")])
    assert [s["slice"] for s in slices] == [2, 3, 4, 5]
    assert slices[0]["image"].shape == (1, 24, 24) and slices[0]["label"].dtype == torch.uint8


def test_liver_slices_refuse_bad_volumes():
    with pytest.raises(InputError, match="a.nii.gz: empty liver"):
        liver_slices([_volume("a.nii.gz", liver_slices_=())])
    bad = _volume("b.nii.gz")
    bad["image"] = bad["image"][..., :4]
    with pytest.raises(InputError, match="b.nii.gz: image .* must both be \\(1, H, W, D\\)"):
        liver_slices([bad])
    nan = _volume("c.nii.gz")
    nan["image"][0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="c.nii.gz: image holds NaN"):
        liver_slices([nan])


def test_balancing_gives_every_patient_the_same_number_of_slices():
    slices = liver_slices([_volume("a", (1, 2, 3)), _volume("b", (0, 1, 2, 3, 4, 5, 6))])
    balanced = balance_patients(slices, seed=0)
    counts = {p: sum(s["patient_id"] == p for s in balanced) for p in ("a", "b")}
    assert counts == {"a": 7, "b": 7}
    per_slice = np.bincount([s["slice"] for s in balanced if s["patient_id"] == "a"])
    assert sorted(per_slice[1:].tolist()) == [2, 2, 3]  # whole repeats, then a remainder without replacement
    assert balanced == balance_patients(slices, seed=0)  # deterministic
    # patches follow: each patient contributes the same number of patches
    counts = count_patches(extract_patches(balanced, PatchGrid(8, 8)))
    assert counts["a"]["patches"] == counts["b"]["patches"] == 7 * 4


def test_fold_data_validates_on_a_patient_with_both_kinds_of_patch():
    volumes = [_volume("p1"), _volume("p2", tumour=True), _volume("p3", (1, 2), tumour=True)]
    data = fold_data(volumes, PatchGrid(8, 8, min_liver_fraction=0.5))
    assert data["val_patients"] == ["p2"] and data["train_patients"] == ["p1", "p3"]
    assert {p["patient_id"] for p in data["val_patches"]} == {"p2"} and len(data["val_patches"]) == 4 * 4
    counts = count_patches(data["train_patches"])  # p3 (2 slices) is duplicated up to p1's 4 slices
    assert counts == {"p1": {"patches": 16, "tumor": 0}, "p3": {"patches": 16, "tumor": 4}}
    with pytest.raises(InputError, match="no training patient has both tumour and non-tumour patches"):
        fold_data([_volume("p1"), _volume("p2")], PatchGrid(8, 8))
