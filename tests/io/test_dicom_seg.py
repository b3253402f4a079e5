import json
import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_fixtures import SegmentSpec, write_seg, write_study
from pydicom.sr.codedict import codes

from livervae.errors import InputError
from livervae.io.dicom_seg import DEFAULT_SEGMENT_MAP, parse_segment_map, read_dicom_seg_labels
from livervae.io.dicom_series import read_dicom_series, sitk_to_volume
from livervae.io.volume import Volume
from livervae.labels import LIVER, TUMOR


def test_dcmqi_seg_reads_back_the_known_liver_counts(dcmqi):
    ct = read_dicom_series(dcmqi / "ct")
    label = read_dicom_seg_labels(dcmqi / "liver_seg.dcm", ct)
    per_file = {path.name: int((label.array[:, :, k] == LIVER).sum()) for k, path in enumerate(ct.files)}
    assert per_file == {"01.dcm": 35220, "02.dcm": 35645, "03.dcm": 36233}
    assert set(np.unique(label.array)) == {0, LIVER}


def test_dcmqi_seg_matches_the_nrrd_label_map_voxel_for_voxel(dcmqi):
    ct = read_dicom_series(dcmqi / "ct")
    label = read_dicom_seg_labels(dcmqi / "liver_seg.dcm", ct)
    nrrd = sitk_to_volume(sitk.ReadImage(str(dcmqi / "liver_seg.nrrd")), "nrrd")
    assert np.array_equal(label.array, nrrd.array.astype(np.uint8))
    assert np.allclose(label.affine, nrrd.affine, atol=1e-3)
    assert float(ct.volume.array[label.array == LIVER].mean()) == pytest.approx(37.3, abs=0.1)


def test_seg_on_another_frame_of_reference_is_refused(dcmqi, tmp_path):
    ct_copy = tmp_path / "ct"
    shutil.copytree(dcmqi / "ct", ct_copy)
    for path in ct_copy.iterdir():
        ds = pydicom.dcmread(path)
        ds.FrameOfReferenceUID = pydicom.uid.generate_uid()
        ds.save_as(path)
    with pytest.raises(InputError, match="frame of reference differs"):
        read_dicom_seg_labels(dcmqi / "liver_seg.dcm", read_dicom_series(ct_copy))


def test_frames_off_the_ct_grid_are_refused(dcmqi, tmp_path):
    ct_copy = tmp_path / "ct"
    shutil.copytree(dcmqi / "ct", ct_copy)
    for path in ct_copy.iterdir():
        ds = pydicom.dcmread(path)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z + 10.0]
        ds.save_as(path)
    with pytest.raises(InputError, match="matches no slice of the CT"):
        read_dicom_seg_labels(dcmqi / "liver_seg.dcm", read_dicom_series(ct_copy))


def test_missing_or_unreadable_seg(dcmqi, tmp_path):
    ct = read_dicom_series(dcmqi / "ct")
    with pytest.raises(InputError, match="DICOM-SEG file not found"):
        read_dicom_seg_labels(tmp_path / "none.dcm", ct)
    with pytest.raises(InputError, match="cannot read as a DICOM Segmentation"):
        read_dicom_seg_labels(dcmqi / "ct" / "01.dcm", ct)


def test_segment_map_can_drop_the_liver_and_then_refuses(dcmqi):
    ct = read_dicom_series(dcmqi / "ct")
    with pytest.raises(InputError, match="no liver segment .*1 'Liver' \\(SRT:T-62000\\)"):
        read_dicom_seg_labels(dcmqi / "liver_seg.dcm", ct, parse_segment_map("SRT:T-62000=ignore,liver=ignore"))


def test_parse_segment_map_inline_and_json(tmp_path):
    merged = parse_segment_map("Tumour Region=tumour, SCT:12345=vessel")
    assert merged["tumour region"] == "tumor" and merged["SCT:12345"] == "vessel"
    assert merged["SCT:10200004"] == DEFAULT_SEGMENT_MAP["SCT:10200004"]
    (tmp_path / "map.json").write_text(json.dumps({"Lesion A": "tumor"}))
    assert parse_segment_map(str(tmp_path / "map.json"))["lesion a"] == "tumor"
    with pytest.raises(InputError, match="role 'kidney'"):
        parse_segment_map("Kidney=kidney")
    with pytest.raises(InputError, match="not of the form key=role"):
        parse_segment_map("Liver")


@pytest.fixture()
def vessel_study(tmp_path, ct_volume):
    """A CT with liver, a lesion, an intrahepatic vessel, an extrahepatic vessel and an aorta as SEG segments."""
    files = write_study(ct_volume, tmp_path / "ct", seed="vessels/ct")
    shape = ct_volume.shape
    liver = np.zeros(shape, bool)
    liver[4:18, 3:15, 1:7] = True
    lesion = np.zeros(shape, bool)
    lesion[6:9, 5:8, 3:5] = True
    inner_vessel = np.zeros(shape, bool)
    inner_vessel[12:14, 10:12, 2:6] = True  # enclosed by liver on every slice
    outer_vessel = np.zeros(shape, bool)
    outer_vessel[19:21, 8:10, 2:6] = True  # outside the liver
    aorta = np.zeros(shape, bool)
    aorta[20:23, 15:18, :] = True
    segments = [
        SegmentSpec("Liver", codes.SCT.Liver, liver & ~inner_vessel),
        SegmentSpec("Mass", codes.SCT.Mass, lesion),
        SegmentSpec("Portal vein", codes.SCT.PortalVein, inner_vessel | outer_vessel),
        SegmentSpec("Aorta", codes.SCT.Aorta, aorta),
    ]
    seg = write_seg(files, segments, tmp_path / "seg" / "1-1.dcm")
    return read_dicom_series(tmp_path / "ct"), seg, liver, lesion, inner_vessel, outer_vessel, aorta


def test_segments_map_to_liver_tumor_and_vessels(vessel_study):
    ct, seg, liver, lesion, inner, outer, aorta = vessel_study
    background = read_dicom_seg_labels(seg, ct).array
    assert np.array_equal(background == TUMOR, lesion)
    assert np.array_equal(background == LIVER, liver & ~inner & ~lesion)
    assert not background[inner | outer | aorta].any()

    as_liver = read_dicom_seg_labels(seg, ct, vessels="liver").array
    assert np.all(as_liver[inner] == LIVER)
    assert not as_liver[outer | aorta].any()
    assert np.array_equal(as_liver == TUMOR, lesion)


def test_sparse_frames_and_label_on_ct_grid(vessel_study):
    ct, seg, *_ = vessel_study
    label = read_dicom_seg_labels(seg, ct)
    assert isinstance(label, Volume) and label.same_grid(ct.volume) and label.array.dtype == np.uint8
