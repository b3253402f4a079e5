import shutil

import numpy as np
import pytest
from dicom_export import SeriesIdentity, write_ct_series

from livervae.data.formats import SourceOptions
from livervae.data.formats.ircadb import iter_cases
from livervae.errors import InputError
from livervae.io.volume import Volume
from livervae.labels import LIVER, TUMOR


def test_shipped_case_labels(real_case):
    (case,) = iter_cases(real_case, SourceOptions())
    label = case.label.array
    assert case.case_id == "3dircadb1_17"
    assert int((label == LIVER).sum()) == 1_920_507
    assert int((label == TUMOR).sum()) == 185_990
    # Orientation check against the dataset's documented facts: mean liver HU 99, most tumour on slice 97.
    assert float(case.image.array[label >= LIVER].mean()) == pytest.approx(99, abs=1)
    assert int((label == TUMOR).sum(axis=(0, 1)).argmax()) == 97
    assert case.label.same_grid(case.image)


def _mask_series(mask: np.ndarray, ct_volume: Volume, folder, name: str):
    values = Volume(np.where(mask, 255, 0).astype(np.int16), ct_volume.affine, name)
    write_ct_series(values, folder / name, SeriesIdentity(uid_seed=f"mask-{name}"))


@pytest.fixture()
def ircadb_root(tmp_path, labelled_ct):
    """Two patients in the original release layout: zipped CT, mask folders and a zipped mask set."""
    image, label = labelled_ct
    root = tmp_path / "3Dircadb1"
    for patient, zipped_masks in (("3Dircadb1.1", False), ("3Dircadb1.2", True)):
        folder = root / patient
        write_ct_series(image, tmp_path / "tmp" / patient / "PATIENT_DICOM", SeriesIdentity(uid_seed=patient))
        shutil.make_archive(str(folder / "PATIENT_DICOM"), "zip", tmp_path / "tmp" / patient, "PATIENT_DICOM")
        masks = tmp_path / "tmp" / patient / "MASKS_DICOM"
        liver = label.array >= 1
        first = np.zeros_like(liver)
        first[6:9, 5:8, 2:4] = True
        second = np.zeros_like(liver)
        second[13:16, 11:14, 4:6] = True
        _mask_series(liver, image, masks, "liver")
        _mask_series(first, image, masks, "livertumor01")
        _mask_series(second, image, masks, "livertumor02")
        _mask_series(np.ones_like(liver), image, masks, "skin")  # ignored structure
        if zipped_masks:
            shutil.make_archive(str(folder / "MASKS_DICOM"), "zip", masks.parent, "MASKS_DICOM")
        else:
            shutil.copytree(masks, folder / "MASKS_DICOM")
    return root


def test_release_layout_with_zips_and_folders(ircadb_root, labelled_ct):
    image, label = labelled_ct
    cases = list(iter_cases(ircadb_root, SourceOptions()))
    assert [c.case_id for c in cases] == ["3Dircadb1_1", "3Dircadb1_2"]
    for case in cases:
        assert np.array_equal(case.label.array, label.array)
        assert np.array_equal(case.image.array, image.array)


def test_missing_liver_mask_is_refused(ircadb_root):
    shutil.rmtree(ircadb_root / "3Dircadb1.1" / "MASKS_DICOM" / "liver")
    with pytest.raises(InputError, match="no 'liver' mask series found"):
        list(iter_cases(ircadb_root / "3Dircadb1.1", SourceOptions()))


def test_not_an_ircadb_folder(tmp_path):
    with pytest.raises(InputError, match="no 3D-IRCADb patient folder"):
        list(iter_cases(tmp_path, SourceOptions()))
    with pytest.raises(InputError, match="source not found"):
        list(iter_cases(tmp_path / "missing", SourceOptions()))
