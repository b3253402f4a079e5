import json
import os

import nibabel as nib
import numpy as np
import pytest

from livervae.data.preprocess import preprocess
from livervae.errors import InputError, OutputError


@pytest.fixture()
def lits_source(tmp_path, labelled_ct):
    image, label = labelled_ct
    root = tmp_path / "lits"
    root.mkdir()
    for number in range(4):
        nib.save(nib.Nifti1Image(image.array, image.affine), str(root / f"volume-{number}.nii"))
        nib.save(nib.Nifti1Image(label.array, image.affine), str(root / f"segmentation-{number}.nii"))
    return root


def test_lits_to_normalised_dataset(tmp_path, lits_source, labelled_ct):
    out = tmp_path / "dataset"
    summary = preprocess("lits", lits_source, out, n_folds=2, seed=1)
    assert sorted(os.listdir(out)) == ["datalist.json", "images", "labels", "summary.json"]
    datalist = json.loads((out / "datalist.json").read_text())
    assert sorted(e["fold"] for e in datalist["training"]) == [0, 0, 1, 1]
    label = nib.load(str(out / "labels" / "lits_002.nii.gz"))
    assert label.get_data_dtype() == np.uint8
    assert np.array_equal(np.asarray(label.dataobj), labelled_ct[1].array)
    assert summary["cases"]["lits_000"]["lesion_count"] == 2
    assert json.loads((out / "summary.json").read_text())["dataset"]["lesions_total"] == 8


def test_one_bad_case_leaves_no_dataset(tmp_path, lits_source, labelled_ct):
    image, label = labelled_ct
    bad = label.array.copy()
    bad[0, 0, 0] = 4
    nib.save(nib.Nifti1Image(bad, image.affine), str(lits_source / "segmentation-2.nii"))
    with pytest.raises(InputError, match=r"segmentation-2.nii: label values \[4\]"):
        preprocess("lits", lits_source, tmp_path / "dataset")
    assert sorted(os.listdir(tmp_path)) == ["lits"]


def test_existing_output_is_kept_when_a_rerun_fails(tmp_path, lits_source):
    out = tmp_path / "dataset"
    preprocess("lits", lits_source, out)
    before = (out / "datalist.json").read_text()
    (lits_source / "volume-3.nii").write_bytes(b"garbage")
    with pytest.raises(OutputError, match="--overwrite"):
        preprocess("lits", lits_source, out)
    with pytest.raises(InputError, match="volume-3.nii: cannot read as NIfTI"):
        preprocess("lits", lits_source, out, overwrite=True)
    assert (out / "datalist.json").read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["dataset", "lits"]


def test_unknown_format(tmp_path):
    with pytest.raises(InputError, match="unknown format 'nrrd'"):
        preprocess("nrrd", tmp_path, tmp_path / "out")


def test_real_ircadb_case(tmp_path, real_case):
    summary = preprocess("ircadb", real_case, tmp_path / "real", n_folds=5)
    case = summary["cases"]["3dircadb1_17"]
    assert case["label_voxels"]["liver"] == 1_920_507 and case["label_voxels"]["tumor"] == 185_990
    assert case["lesion_count"] == 2 and case["fold"] == 0
    assert case["liver_ml"] == pytest.approx(2_106_497 * 0.743 * 0.743 * 1.6 / 1000, abs=0.5)
    image = nib.load(str(tmp_path / "real" / "images" / "3dircadb1_17.nii.gz"))
    assert np.array_equal(
        np.asarray(image.dataobj), np.asarray(nib.load(str(real_case / "nifti" / "ct.nii.gz")).dataobj)
    )
