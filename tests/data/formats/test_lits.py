import nibabel as nib
import numpy as np
import pytest

from livervae.data.formats import SourceOptions
from livervae.data.formats.lits import iter_cases
from livervae.errors import InputError


def _save(array, affine, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), str(path))


@pytest.fixture()
def lits_root(tmp_path, labelled_ct):
    image, label = labelled_ct
    root = tmp_path / "LiTS"
    _save(image.array.astype(np.float32), image.affine, root / "Training Batch 1" / "volume-0.nii")
    _save(label.array.astype(np.float32), image.affine, root / "Training Batch 1" / "segmentation-0.nii")
    _save(image.array, image.affine, root / "Training Batch 2" / "volume-12.nii.gz")
    _save(label.array, image.affine, root / "Training Batch 2" / "segmentation-12.nii.gz")
    _save(image.array, image.affine, root / "Test" / "test-volume-3.nii")
    (root / "Training Batch 1" / "._volume-0.nii").write_bytes(b"macOS resource fork")
    return root


def test_pairs_by_number_across_batches(lits_root, labelled_ct):
    image, label = labelled_ct
    cases = list(iter_cases(lits_root, SourceOptions()))
    assert [c.case_id for c in cases] == ["lits_000", "lits_012", "lits_test_003"]
    for case in cases[:2]:
        assert np.array_equal(case.image.array, image.array)
        assert np.array_equal(case.label.array, label.array)
    assert cases[2].label is None


def test_orphan_segmentation_and_empty_folder(tmp_path, lits_root):
    (lits_root / "Training Batch 2" / "volume-12.nii.gz").unlink()
    with pytest.raises(InputError, match="segmentation without its volume-12.nii"):
        list(iter_cases(lits_root, SourceOptions()))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no LiTS volume-N.nii files found"):
        list(iter_cases(tmp_path / "empty", SourceOptions()))
