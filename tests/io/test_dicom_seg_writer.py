"""DICOM-SEG output: the real 3D-IRCADb series (no FrameOfReferenceUID), the dcmqi 3-slice series, bad input."""

import warnings

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from livervae import __version__
from livervae.data.formats.ircadb import read_patient
from livervae.errors import InputError
from livervae.io.dicom_seg import read_dicom_seg_labels
from livervae.io.dicom_seg_writer import (
    REQUIRED_PATIENT_STUDY_KEYWORDS,
    derived_frame_of_reference_uid,
    device_identity,
    quiet_person_name_warnings,
    write_dicom_seg,
)
from livervae.io.dicom_series import read_dicom_series
from livervae.io.volume import Volume
from livervae.labels import LIVER, TUMOR


@pytest.fixture(scope="module")
def ircadb_seg(real_case, tmp_path_factory):
    """The reference label map of 3D-IRCADb patient 17 (built from its masks) written as a SEG of its series."""
    case = read_patient(real_case)
    ct = read_dicom_series(real_case / "PATIENT_DICOM")
    path = write_dicom_seg(case.label, ct, tmp_path_factory.mktemp("seg") / "ircadb17.dcm", bundle_version="9.9.9")
    return ct, case.label.array, path


def _frames_by_source_instance(seg: pydicom.Dataset, ct) -> np.ndarray:
    """Rebuild the label map from the SEG alone: each frame goes to the slice its source reference names."""
    index_of = {uid: k for k, uid in enumerate(ct.sop_instance_uids)}
    frames = seg.pixel_array.reshape(int(seg.NumberOfFrames), seg.Rows, seg.Columns)
    label = np.zeros(ct.volume.shape, dtype=np.uint8)
    for frame, item in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        source = item.DerivationImageSequence[0].SourceImageSequence[0]
        k = index_of[source.ReferencedSOPInstanceUID]
        assert source.ReferencedSOPClassUID == pydicom.uid.CTImageStorage
        position = np.asarray(item.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
        assert np.allclose(position, ct.positions[k], atol=1e-4)
        segment = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        label[:, :, k][frame.T > 0] = max(segment, 0)
    return label


def test_real_series_seg_maps_every_frame_to_its_source_and_reproduces_the_labels(ircadb_seg):
    ct, reference, path = ircadb_seg
    seg = pydicom.dcmread(path)
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and seg.SegmentationType == "BINARY"
    # One frame per slice and segment where the segment is present: liver on 113 slices, tumour on 36.
    slices_with = {value: int((reference == value).any(axis=(0, 1)).sum()) for value in (LIVER, TUMOR)}
    assert int(seg.NumberOfFrames) == slices_with[LIVER] + slices_with[TUMOR]
    assert np.array_equal(_frames_by_source_instance(seg, ct), reference)

    referenced = seg.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == ct.series_uid and len(seg.ReferencedSeriesSequence) == 1
    assert {item.ReferencedSOPInstanceUID for item in referenced.ReferencedInstanceSequence} == set(
        ct.sop_instance_uids
    )

    shared = seg.SharedFunctionalGroupsSequence[0]
    assert np.allclose([float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing], ct.volume.spacing[1::-1])
    assert np.allclose([float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient], ct.orientation)
    assert float(shared.PixelMeasuresSequence[0].SliceThickness) == pytest.approx(1.6, abs=1e-4)


def test_real_series_seg_reads_back_through_highdicom_and_livervae(ircadb_seg):
    ct, reference, path = ircadb_seg
    seg = hd.seg.segread(path)
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=ct.sop_instance_uids, combine_segments=True, skip_overlap_checks=True
    )
    assert np.array_equal(pixels.transpose(2, 1, 0), reference)
    assert np.array_equal(read_dicom_seg_labels(path, ct).array, reference)

    liver, tumour = (seg.get_segment_description(n) for n in (1, 2))
    assert (liver.segment_label, liver.segmented_property_type) == ("Liver", codes.SCT.Liver)
    assert liver.segmented_property_category == codes.SCT.Organ
    assert (tumour.segment_label, tumour.segmented_property_type) == ("Liver tumour", codes.SCT.Neoplasm)
    assert tumour.segmented_property_category == codes.SCT.MorphologicallyAbnormalStructure
    assert tumour.anatomic_regions == [codes.SCT.Liver]
    for description in (liver, tumour):
        assert description.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        algorithm = description.algorithm_identification[0]
        assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("LiverVAE", __version__)
        assert "liver_tumor_ct_segmentation 9.9.9" in algorithm.AlgorithmSource
    assert seg.Manufacturer == "LiverVAE" and seg.SoftwareVersions == __version__


def test_missing_frame_of_reference_is_derived_from_the_series_in_memory_only(ircadb_seg, real_case):
    ct, _, path = ircadb_seg
    seg = pydicom.dcmread(path, stop_before_pixels=True)
    assert not ct.frame_of_reference_uid
    assert seg.FrameOfReferenceUID == derived_frame_of_reference_uid(ct.series_uid)
    assert derived_frame_of_reference_uid(ct.series_uid) == derived_frame_of_reference_uid(ct.series_uid)
    assert derived_frame_of_reference_uid(ct.series_uid) != derived_frame_of_reference_uid(ct.series_uid + ".1")
    source = pydicom.dcmread(real_case / "PATIENT_DICOM" / "image_0", stop_before_pixels=True)
    assert "FrameOfReferenceUID" not in source  # the shipped files are never changed


def test_study_and_patient_attributes_are_copied_and_nothing_else(ircadb_seg, real_case):
    _, _, path = ircadb_seg
    seg = pydicom.dcmread(path, stop_before_pixels=True)
    source = pydicom.dcmread(real_case / "PATIENT_DICOM" / "image_0", stop_before_pixels=True)
    same = [seg.get(k, "") == source.get(k, "") for k in REQUIRED_PATIENT_STUDY_KEYWORDS]
    assert all(same), [k for k, ok in zip(REQUIRED_PATIENT_STUDY_KEYWORDS, same) if not ok]
    assert seg.SeriesInstanceUID != source.SeriesInstanceUID and seg.Modality == "SEG"
    for keyword in ("InstitutionName", "AcquisitionDate", "AcquisitionTime", "WindowCenter"):
        assert keyword in source and keyword not in seg


@pytest.fixture()
def dcmqi_labels(dcmqi):
    """The dcmqi series and its liver SEG as a label map, plus a small tumour blob inside the liver."""
    ct = read_dicom_series(dcmqi / "ct")
    label = read_dicom_seg_labels(dcmqi / "liver_seg.dcm", ct).array.copy()
    i, j = (int(np.median(a)) for a in np.nonzero(label[:, :, 1] == LIVER))
    label[i - 5 : i + 5, j - 4 : j + 4, 1:3] = TUMOR
    return ct, Volume(label, ct.volume.affine.copy(), "labels")


def test_three_slice_round_trip(dcmqi, dcmqi_labels, tmp_path, caplog, recwarn):
    ct, label = dcmqi_labels
    with caplog.at_level("DEBUG"):
        path = write_dicom_seg(label, ct, tmp_path / "seg.dcm")
    assert np.array_equal(read_dicom_seg_labels(path, ct).array, label.array)
    seg = pydicom.dcmread(path)
    assert np.array_equal(_frames_by_source_instance(seg, ct), label.array)
    source = pydicom.dcmread(dcmqi / "ct" / "01.dcm", stop_before_pixels=True)
    assert seg.FrameOfReferenceUID == source.FrameOfReferenceUID  # kept when the source has one
    assert seg.StudyInstanceUID == source.StudyInstanceUID and seg.PatientID == source.PatientID
    assert seg.PatientName == source.PatientName
    # highdicom warns about this single-component name by quoting it; the writer must not pass the name on.
    said = caplog.text + " ".join(str(w.message) for w in recwarn)
    assert str(source.PatientName) not in said and str(source.PatientID) not in said
    # Type 3 attributes of the patient and study modules are present in the source but not carried over.
    for keyword in ("PatientAge", "StudyDescription"):
        assert keyword in source and keyword not in seg


def test_empty_prediction_still_writes_a_valid_seg(dcmqi_labels, tmp_path):
    ct, label = dcmqi_labels
    empty = Volume(np.zeros_like(label.array), label.affine, "empty")
    path = write_dicom_seg(empty, ct, tmp_path / "empty.dcm")
    assert not read_dicom_seg_labels(path, ct).array.any()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a, f: (a[:, :, :2], f), "not on the CT series' grid"),
        (lambda a, f: (a, f + np.diag([0, 0, 1.0, 0])), "not on the CT series' grid"),
        (lambda a, f: (np.where(a == TUMOR, 3, a), f), r"label values \[3\]"),
    ],
)
def test_bad_label_maps_are_refused_and_nothing_is_written(dcmqi_labels, tmp_path, change, message):
    ct, label = dcmqi_labels
    array, affine = change(label.array, label.affine)
    with pytest.raises(InputError, match=message):
        write_dicom_seg(Volume(array.astype(np.uint8), affine, "bad"), ct, tmp_path / "seg.dcm")
    assert list(tmp_path.iterdir()) == []


def test_person_name_warnings_become_one_log_line_without_the_name_and_others_pass(caplog):
    def make() -> int:
        hd.valuerep.check_person_name("Quinn")  # highdicom's own warning, quoting the name
        warnings.warn("another warning", UserWarning)
        return 7

    with caplog.at_level("INFO", logger="livervae"), pytest.warns(UserWarning) as caught:
        assert quiet_person_name_warnings(make, copied_from="the SEG") == 7
    assert [str(w.message) for w in caught] == ["another warning"]
    assert "a person name copied from the SEG has a single component" in caplog.text and "Quinn" not in caplog.text


def test_seg_names_the_livervae_device(ircadb_seg):
    identity = device_identity("liver_tumor_ct_segmentation")
    assert identity == {
        "manufacturer": "LiverVAE",
        "manufacturer_model_name": "liver_tumor_ct_segmentation",
        "software_versions": __version__,
        "device_serial_number": "none",
        "specific_character_set": "ISO_IR 192",
    }
    seg = pydicom.dcmread(ircadb_seg[2], stop_before_pixels=True)
    keywords = ("Manufacturer", "ManufacturerModelName", "SoftwareVersions", "DeviceSerialNumber")
    assert [seg.get(k) for k in keywords] == ["LiverVAE", "liver_tumor_ct_segmentation", __version__, "none"]
    assert seg.SpecificCharacterSet == "ISO_IR 192"
