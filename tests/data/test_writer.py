import csv
import json

import nibabel as nib
import numpy as np
import pytest
from monai.data import load_decathlon_datalist
from monai.transforms import LoadImaged

from livervae.data.case import Case
from livervae.data.writer import DatasetWriter
from livervae.errors import InputError
from livervae.io.volume import Volume

ROW = {"TCIA_ID": "p1", "Tr_Size": 4.0, "tumor_nodul": "multinodular", "T_involvment": "< or = 50%", "BCLC": "B"}


def _cases(labelled_ct):
    image, label = labelled_ct
    return [
        Case("p1_a", "p1", image, label, clinical=ROW),
        Case("p1_b", "p1", image, label, clinical=ROW),
        Case("p2", "p2", image, Volume(np.where(label.array > 0, 1, 0).astype(np.uint8), image.affine)),
        Case("p3", "p3", image, label),
        Case("unlabelled", "p4", image),
    ]


def test_writes_a_monai_readable_dataset(tmp_path, labelled_ct):
    writer = DatasetWriter(tmp_path, "demo", "test")
    for case in _cases(labelled_ct):
        writer.add(case)
    summary = writer.finish(n_folds=2, seed=0)
    datalist = json.loads((tmp_path / "datalist.json").read_text())
    assert datalist["numTraining"] == 4 and datalist["numTest"] == 1 and datalist["num_folds"] == 2
    folds = {entry["case_id"]: entry["fold"] for entry in datalist["training"]}
    assert folds["p1_a"] == folds["p1_b"]
    assert datalist["clinical"] == "clinical.csv"
    assert datalist["training"][0]["severity"] == pytest.approx(summary["cases"]["p1_a"]["severity"])
    assert "severity" not in datalist["training"][2]
    assert datalist["testing"][0] == {"image": "images/unlabelled.nii.gz", "case_id": "unlabelled", "patient_id": "p4"}

    entries = load_decathlon_datalist(tmp_path / "datalist.json", base_dir=tmp_path)
    loaded = LoadImaged(keys=["image", "label"])(entries[0])
    assert tuple(loaded["image"].shape) == (24, 20, 8)
    assert np.array_equal(np.asarray(loaded["label"]), labelled_ct[1].array)

    with open(tmp_path / "clinical.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["patient_id"] for r in rows] == ["p1"] and float(rows[0]["severity"]) > 0
    assert summary["dataset"]["cases"] == 5 and summary["dataset"]["cases_without_tumor"] == 1


def test_duplicate_case_ids_and_empty_datasets(tmp_path, labelled_ct):
    writer = DatasetWriter(tmp_path / "a", "a", "test")
    case = _cases(labelled_ct)[0]
    writer.add(case)
    with pytest.raises(InputError, match="case id p1_a occurs twice"):
        writer.add(case)
    with pytest.raises(InputError, match="produced no cases"):
        DatasetWriter(tmp_path / "b", "b", "test").finish(5, 0)


def test_label_is_written_on_the_image_affine(tmp_path, labelled_ct):
    image, label = labelled_ct
    nudged = Volume(label.array, image.affine + 1e-5, "label")
    writer = DatasetWriter(tmp_path, "x", "test")
    writer.add(Case("c", "c", image, nudged))
    assert np.array_equal(
        nib.load(str(tmp_path / "labels" / "c.nii.gz")).affine, nib.load(str(tmp_path / "images" / "c.nii.gz")).affine
    )


def test_negative_cases_keep_their_empty_label_and_are_marked(tmp_path, labelled_ct):
    from livervae.data.datalist import load_fold

    image, label = labelled_ct
    empty = Volume(np.zeros_like(label.array), image.affine, "empty_label.nii.gz")
    writer = DatasetWriter(tmp_path / "ds", "negatives", "test")
    # A case with no liver is a mistake unless it is marked negative.
    with pytest.raises(InputError, match="empty_label.nii.gz: empty liver"):
        writer.add(Case("p0", "p0", image, empty))
    with pytest.raises(InputError, match="marked negative .* has liver"):
        writer.add(Case("p9", "p9", image, label, negative=True))
    with pytest.raises(InputError, match="needs its \\(empty\\) label"):
        writer.add(Case("p8", "p8", image, negative=True))
    for k in range(4):
        writer.add(Case(f"p{k}", f"p{k}", image, label))
    writer.add(Case("neg", "neg", image, empty, negative=True))
    writer.finish(n_folds=2, seed=0)
    datalist = json.loads((tmp_path / "ds" / "datalist.json").read_text())
    entry = next(e for e in datalist["training"] if e["case_id"] == "neg")
    assert entry["negative"] is True and not any(e.get("negative") for e in datalist["training"] if e is not entry)
    assert not nib.load(tmp_path / "ds" / entry["label"]).get_fdata().any()
    # Liver training sees the negative; validation, evaluation and the tumour stage (negatives=False) do not.
    fold = 1 - entry["fold"]
    assert "neg" in {e["case_id"] for e in load_fold(tmp_path / "ds", fold, "train")}
    assert "neg" not in {e["case_id"] for e in load_fold(tmp_path / "ds", fold, "train", negatives=False)}
    assert "neg" not in {e["case_id"] for e in load_fold(tmp_path / "ds", entry["fold"], "val")}
    assert "neg" not in {e["case_id"] for e in load_fold(tmp_path / "ds", split="all")}
    # Every entry has the same keys, so MONAI's collate batches a negative with a positive case.
    assert len({tuple(sorted(e)) for e in load_fold(tmp_path / "ds", fold, "train")}) == 1
