import json

import nibabel as nib
import numpy as np
import pytest

from livervae.data.formats import SourceOptions
from livervae.data.formats.msd import iter_cases
from livervae.errors import InputError


def _save(array, affine, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), str(path))


@pytest.fixture()
def task03(tmp_path, labelled_ct):
    image, label = labelled_ct
    root = tmp_path / "Task03_Liver"
    for index in (0, 1):
        _save(image.array, image.affine, root / "imagesTr" / f"liver_{index}.nii.gz")
        _save(label.array, image.affine, root / "labelsTr" / f"liver_{index}.nii.gz")
    _save(image.array, image.affine, root / "imagesTs" / "liver_132.nii.gz")
    (root / "imagesTr" / "._liver_0.nii.gz").write_bytes(b"macOS resource fork")
    meta = {
        "name": "Liver",
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "liver", "2": "cancer"},
        "training": [
            {"image": f"./imagesTr/liver_{i}.nii.gz", "label": f"./labelsTr/liver_{i}.nii.gz"} for i in (0, 1)
        ],
        "test": ["./imagesTs/liver_132.nii.gz"],
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_training_and_test_cases(task03, labelled_ct):
    image, label = labelled_ct
    cases = list(iter_cases(task03, SourceOptions()))
    assert [c.case_id for c in cases] == ["liver_0", "liver_1", "liver_132"]
    assert np.array_equal(cases[0].label.array, label.array) and cases[2].label is None
    assert np.array_equal(cases[1].image.array, image.array)


def test_label_numbering_comes_from_dataset_json(task03, labelled_ct):
    _, label = labelled_ct
    meta = json.loads((task03 / "dataset.json").read_text())
    meta["labels"] = {"0": "background", "1": "cancer", "2": "liver"}
    (task03 / "dataset.json").write_text(json.dumps(meta))
    swapped = np.choose(label.array, [0, 2, 1]).astype(np.uint8)
    assert np.array_equal(next(iter_cases(task03, SourceOptions())).label.array, swapped)


def test_bad_dataset_json(task03):
    meta = json.loads((task03 / "dataset.json").read_text())
    meta["training"][1]["label"] = "./labelsTr/liver_99.nii.gz"
    (task03 / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="lists ./labelsTr/liver_99.nii.gz, which does not exist"):
        list(iter_cases(task03, SourceOptions()))
    meta["labels"]["3"] = "spleen"
    (task03 / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="label 3 'spleen' is neither"):
        list(iter_cases(task03, SourceOptions()))
    meta["modality"] = {"0": "MRI"}
    (task03 / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="modality is 'MRI', expected CT"):
        list(iter_cases(task03, SourceOptions()))
    (task03 / "dataset.json").unlink()
    with pytest.raises(InputError, match="no dataset.json"):
        list(iter_cases(task03, SourceOptions()))


def test_label_value_not_in_dataset_json(task03, labelled_ct):
    image, label = labelled_ct
    bad = label.array.copy()
    bad[0, 0, 0] = 5
    nib.save(nib.Nifti1Image(bad, image.affine), str(task03 / "labelsTr" / "liver_0.nii.gz"))
    with pytest.raises(InputError, match=r"label values \[5\] are not listed in dataset.json"):
        list(iter_cases(task03, SourceOptions()))
