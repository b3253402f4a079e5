import json

import pytest

from livervae.data.cohort import cohort_patients, dataset_dirs, fold_cases, load_cohort, lopo_split
from livervae.errors import InputError


def _dataset(root, patients):
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    training = []
    for p in patients:
        for name in (f"images/{p}.nii.gz", f"labels/{p}.nii.gz"):
            (root / name).write_bytes(b"")
        training.append(
            {"image": f"images/{p}.nii.gz", "label": f"labels/{p}.nii.gz", "case_id": p, "patient_id": p, "fold": 0}
        )
    (root / "datalist.json").write_text(json.dumps({"training": training, "testing": []}))
    return root


def test_cohort_merges_datasets_and_splits_one_patient_out(tmp_path):
    a = _dataset(tmp_path / "a", ["p3", "p1"])
    b = _dataset(tmp_path / "b", ["p2", "p0"])
    entries = load_cohort([a, b])
    assert cohort_patients(entries) == ["p0", "p1", "p2", "p3"]
    assert all(e["image"].startswith(str(tmp_path)) for e in entries)
    split = lopo_split(entries, 1)
    assert split["test_patient"] == "p1" and [e["patient_id"] for e in split["test"]] == ["p1"]
    # training patients in cyclic order after the test patient: the validation patient is chosen from the front
    assert split["train_patients"] == ["p2", "p3", "p0"]
    assert [e["patient_id"] for e in split["train"]] == ["p2", "p3", "p0"]
    assert dataset_dirs(f"{a}:{b}") == [a, b]
    assert [e["patient_id"] for e in fold_cases([a, b], 3, "val")] == ["p3"]
    assert len(fold_cases([a, b], 3, "train")) == 3 and len(fold_cases([a, b], 3, "all")) == 4


def test_cohort_refuses_bad_input(tmp_path):
    a = _dataset(tmp_path / "a", ["p0", "p1"])
    with pytest.raises(InputError, match="at least 3 patients, the cohort has 2"):
        lopo_split(load_cohort(a), 0)
    b = _dataset(tmp_path / "b", ["p1", "p2"])
    with pytest.raises(InputError, match="patient id 'p1' also appears in"):
        load_cohort([a, b])
    c = _dataset(tmp_path / "c", ["p5", "p6", "p7"])
    with pytest.raises(InputError, match=r"fold must be an integer in 0..2"):
        lopo_split(load_cohort(c), 3)
    with pytest.raises(InputError, match="no datalist.json"):
        load_cohort(tmp_path / "missing")
    with pytest.raises(InputError, match="split must be one of"):
        fold_cases(c, 0, "test2")
