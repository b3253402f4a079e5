import nibabel as nib
import numpy as np
import pytest

from livervae.errors import InputError
from livervae.io.nifti import load_nifti, save_nifti


def test_round_trip_keeps_values_dtype_and_affine(tmp_path, ct_volume):
    path = save_nifti(ct_volume, tmp_path / "ct.nii.gz")
    loaded = load_nifti(path)
    assert loaded.array.dtype == np.int16
    assert np.array_equal(loaded.array, ct_volume.array)
    assert np.allclose(loaded.affine, ct_volume.affine, atol=1e-5)
    header = nib.load(str(path)).header
    assert int(header["qform_code"]) == 1 and int(header["sform_code"]) == 1


def test_scaled_integers_come_back_in_hu(tmp_path, ct_volume):
    img = nib.Nifti1Image((ct_volume.array + 1024).astype(np.uint16), ct_volume.affine)
    img.header.set_slope_inter(1.0, -1024.0)
    nib.save(img, str(tmp_path / "scaled.nii"))
    assert np.array_equal(load_nifti(tmp_path / "scaled.nii").array, ct_volume.array)


@pytest.mark.parametrize(
    "data, message",
    [
        (np.zeros((5, 5), dtype=np.int16), "expected a 3D volume, got 2D"),
        (np.zeros((5, 5, 5, 3), dtype=np.int16), "got 4D"),
        (np.full((5, 5, 5), np.nan, dtype=np.float32), "125 NaN or infinite"),
    ],
)
def test_bad_volumes_are_refused_with_the_file_named(tmp_path, data, message):
    path = tmp_path / "bad.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    with pytest.raises(InputError, match=message) as info:
        load_nifti(path)
    assert str(path) in str(info.value)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_nifti(tmp_path / "nope.nii.gz")
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(InputError, match="cannot read as NIfTI") as info:
        load_nifti(corrupt)
    assert str(corrupt) in str(info.value)


def test_truncated_file_is_refused(tmp_path, ct_volume):
    path = save_nifti(ct_volume, tmp_path / "ct.nii")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(InputError, match="cannot read as NIfTI"):
        load_nifti(path)


def test_save_leaves_no_temporary_files(tmp_path, ct_volume):
    save_nifti(ct_volume, tmp_path / "a.nii.gz")
    assert [p.name for p in tmp_path.iterdir()] == ["a.nii.gz"]
