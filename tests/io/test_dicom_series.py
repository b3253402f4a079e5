import math
import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_export import SeriesIdentity, write_ct_series
from pydicom.uid import JPEGBaseline8Bit

from livervae.errors import InputError
from livervae.io.dicom_series import read_dicom_series, scan_dicom_folder


@pytest.fixture()
def series_dir(tmp_path, ct_volume):
    folder = tmp_path / "series"
    write_ct_series(ct_volume, folder)
    return folder


def _edit(path, **changes):
    ds = pydicom.dcmread(path)
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    ds.save_as(path)


def test_real_ircadb_series_equals_the_shipped_nifti(real_case):
    series = read_dicom_series(real_case / "PATIENT_DICOM")
    reference = nib.load(str(real_case / "nifti" / "ct.nii.gz"))
    assert series.volume.array.dtype == np.int16
    assert np.array_equal(series.volume.array, np.asarray(reference.dataobj))
    assert np.allclose(series.volume.affine, reference.affine, atol=1e-5)
    assert len(series.files) == 119 and series.files[0].name == "image_0"


def test_rescale_and_geometry_round_trip(series_dir, ct_volume):
    series = read_dicom_series(series_dir)
    assert np.array_equal(series.volume.array, ct_volume.array)
    assert np.allclose(series.volume.affine, ct_volume.affine, atol=1e-5)
    assert series.modality == "CT"


def test_slices_are_sorted_by_position_not_by_file_name(series_dir, ct_volume):
    files = sorted(series_dir.iterdir())
    for i, path in enumerate(files):  # names now run against the slice order
        path.rename(series_dir / f"z{len(files) - i:03d}.dcm")
    assert np.array_equal(read_dicom_series(series_dir).volume.array, ct_volume.array)


def test_several_series_need_an_explicit_choice(tmp_path, ct_volume):
    folder = tmp_path / "mixed"
    write_ct_series(ct_volume, folder / "a", SeriesIdentity(uid_seed="a", series_description="arterial"))
    other = write_ct_series(ct_volume, folder / "b", SeriesIdentity(uid_seed="b", series_description="venous"))
    with pytest.raises(InputError, match="holds 2 image series, choose one with --series-uid") as info:
        read_dicom_series(folder)
    assert "arterial" in str(info.value) and "venous" in str(info.value)
    uid = str(pydicom.dcmread(other[0]).SeriesInstanceUID)
    assert read_dicom_series(folder, series_uid=uid).series_uid == uid
    with pytest.raises(InputError, match="no series with SeriesInstanceUID 1.2.3"):
        read_dicom_series(folder, series_uid="1.2.3")


def test_missing_slice_is_named(series_dir):
    (series_dir / "IM-0004.dcm").unlink()
    with pytest.raises(InputError, match=r"1 missing slice\(s\): gap of 5 mm after IM-0003.dcm"):
        read_dicom_series(series_dir)


def test_non_uniform_spacing_is_refused(series_dir):
    for path in sorted(series_dir.iterdir())[5:]:
        ds = pydicom.dcmread(path)
        position = [float(v) for v in ds.ImagePositionPatient]
        _edit(path, ImagePositionPatient=[position[0], position[1], position[2] + 1.1])
    with pytest.raises(InputError, match="non-uniform slice spacing: steps range from 2.5 to 3.6 mm"):
        read_dicom_series(series_dir)


def test_gantry_tilt_is_refused(series_dir):
    for k, path in enumerate(sorted(series_dir.iterdir())):
        ds = pydicom.dcmread(path)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        _edit(path, ImagePositionPatient=[x, y + k * 2.5 * math.tan(math.radians(15)), z])
    with pytest.raises(InputError, match="gantry tilt of 15.0 degrees"):
        read_dicom_series(series_dir)


def test_duplicate_positions_are_refused(series_dir):
    copy = series_dir / "copy.dcm"
    shutil.copy(series_dir / "IM-0002.dcm", copy)
    _edit(copy, SOPInstanceUID=pydicom.uid.generate_uid())
    with pytest.raises(InputError, match="two slices share one position"):
        read_dicom_series(series_dir)


def test_mr_is_not_ct(series_dir):
    for path in series_dir.iterdir():
        _edit(path, Modality="MR")
    with pytest.raises(InputError, match="has Modality 'MR', expected 'CT'"):
        read_dicom_series(series_dir)


def test_single_slice_is_a_2d_image(series_dir):
    for path in sorted(series_dir.iterdir())[1:]:
        path.unlink()
    with pytest.raises(InputError, match="expected a 3D volume.*1 slice"):
        read_dicom_series(series_dir)


def test_truncated_header_names_the_file(series_dir):
    victim = series_dir / "IM-0003.dcm"
    victim.write_bytes(victim.read_bytes()[:200])
    with pytest.raises(InputError, match="truncated or corrupt") as info:
        read_dicom_series(series_dir)
    assert str(victim) in str(info.value)


def test_truncated_pixel_data_names_the_file(series_dir):
    victim = series_dir / "IM-0006.dcm"
    victim.write_bytes(victim.read_bytes()[:-300])
    with pytest.raises(InputError, match="cannot decode pixel data") as info:
        read_dicom_series(series_dir)
    assert str(victim) in str(info.value)


def test_undecodable_compressed_pixel_data_names_the_file(series_dir):
    victim = series_dir / "IM-0002.dcm"
    ds = pydicom.dcmread(victim)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8 not a jpeg \xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds.save_as(victim)
    with pytest.raises(InputError, match="cannot decode pixel data") as info:
        read_dicom_series(series_dir)
    assert str(victim) in str(info.value)


def test_non_image_objects_and_other_files_are_skipped(series_dir, ct_volume):
    report = pydicom.Dataset()
    report.file_meta = pydicom.dataset.FileMetaDataset()
    report.file_meta.MediaStorageSOPClassUID = pydicom.uid.BasicTextSRStorage
    report.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    report.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    report.SOPClassUID = pydicom.uid.BasicTextSRStorage
    report.SOPInstanceUID = report.file_meta.MediaStorageSOPInstanceUID
    report.Modality = "SR"
    report.save_as(series_dir / "report.dcm", enforce_file_format=True)
    (series_dir / "README.txt").write_text("exported by PACS")
    assert np.array_equal(read_dicom_series(series_dir).volume.array, ct_volume.array)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(InputError, match="DICOM folder not found"):
        read_dicom_series(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no DICOM image slices found"):
        read_dicom_series(tmp_path / "empty")


def test_scan_finds_segmentations_separately(dcmqi):
    scan = scan_dicom_folder(dcmqi)
    assert [p.name for p, _ in scan.segmentations] == ["liver_seg.dcm"]
    assert len(scan.series) == 1 and len(next(iter(scan.series.values()))) == 3
