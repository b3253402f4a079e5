"""DICOM SR (TID 1500) output: every value against numpy on the real 3D-IRCADb #17 grid, references, bad input.

The real-series case is a constructed label map with four lesions of known geometry (a disc whose largest
cross-sections tie on two slices, a rectangle, a straight and a diagonal line), so each value is recomputed here
from the label and the CT arrays alone: volumes by counting voxels, axes by brute-force pairwise distances of
the pixel centres on each slice, densities by numpy over the lesion's voxels.
"""

import dataclasses
import math
from types import SimpleNamespace

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes
from pydicom.uid import CTImageStorage, SegmentationStorage

from livervae import __version__
from livervae.errors import InputError
from livervae.io.dicom_seg import read_dicom_seg_labels
from livervae.io.dicom_seg_writer import REQUIRED_PATIENT_STUDY_KEYWORDS, build_dicom_seg, write_dicom_seg
from livervae.io.dicom_series import read_dicom_series
from livervae.io.dicom_sr_writer import (
    PROCEDURE_REPORTED,
    TUMOUR_BURDEN,
    build_dicom_sr,
    device_observer_uid,
    sr_path,
    write_dicom_sr,
)
from livervae.io.volume import Volume
from livervae.labels import LIVER, TUMOR
from livervae.measurements import measure_case

BUNDLE_VERSION = "9.9.9"


def _constructed_label(shape: tuple[int, int, int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """A block liver holding four separate lesions; returns the label and the lesion masks, largest first."""
    label = np.zeros(shape, dtype=np.uint8)
    label[150:350, 180:360, 30:80] = LIVER
    ii, jj = np.mgrid[0 : shape[0], 0 : shape[1]]
    disc = np.zeros(shape, dtype=bool)
    for k, radius in ((40, 8), (41, 10), (42, 10), (43, 6)):  # slices 41 and 42 tie: the first holds the axes
        disc[:, :, k] = (ii - 200) ** 2 + (jj - 230) ** 2 <= radius**2
    rectangle = np.zeros(shape, dtype=bool)
    rectangle[260:275, 300:306, 50:53] = True
    line = np.zeros(shape, dtype=bool)
    line[300:309, 200, 60] = True
    diagonal = np.zeros(shape, dtype=bool)
    for t in range(7):
        diagonal[170 + t, 320 + t, 70] = True
    lesions = [disc, rectangle, line, diagonal]
    assert [int(m.sum()) for m in lesions] == sorted((int(m.sum()) for m in lesions), reverse=True)
    for mask in lesions:
        label[mask] = TUMOR
    return label, lesions


@pytest.fixture(scope="module")
def real(real_case, tmp_path_factory):
    """The real series, the constructed label, its measurements, and the SEG and SR written from them."""
    ct = read_dicom_series(real_case / "PATIENT_DICOM")
    label, lesions = _constructed_label(ct.volume.shape)
    out = tmp_path_factory.mktemp("sr")
    seg = write_dicom_seg(Volume(label, ct.volume.affine.copy(), "label"), ct, out / "case.dcm")
    measurements = measure_case(ct.volume, label)
    path = write_dicom_sr(measurements, seg, ct, sr_path(seg), bundle_version=BUNDLE_VERSION)
    return SimpleNamespace(
        ct=ct,
        label=label,
        lesions=lesions,
        measurements=measurements,
        seg=seg,
        seg_dataset=pydicom.dcmread(seg, stop_before_pixels=True),
        path=path,
        dataset=pydicom.dcmread(path),
        sr=hd.sr.srread(path),
    )


def _groups(sr: hd.sr.Comprehensive3DSR) -> dict[str, hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations]:
    groups = sr.content.get_volumetric_roi_measurement_groups()
    by_name = {group.tracking_identifier: group for group in groups}
    assert len(by_name) == len(groups)
    return by_name


def _value(group, name, derivation=None) -> hd.sr.Measurement:
    found = [m for m in group.get_measurements(name=name) if m.derivation == derivation]
    assert len(found) == 1, (name, derivation)
    return found[0]


def _voxel_ml(ct) -> float:
    """Voxel volume from the DICOM geometry: pixel spacing times the distance between slice positions."""
    row_spacing, column_spacing = (float(v) for v in pydicom.dcmread(ct.files[0]).PixelSpacing)
    step = float(np.median(np.linalg.norm(np.diff(ct.positions, axis=0), axis=1)))
    return row_spacing * column_spacing * step / 1000.0


def _world(ct, i, j, k) -> np.ndarray:
    """RAS mm of voxel centres (NIfTI index order)."""
    index = np.stack([np.asarray(i, float), np.asarray(j, float), np.broadcast_to(float(k), np.shape(i))], axis=-1)
    return index @ ct.volume.affine[:3, :3].T + ct.volume.affine[:3, 3]


def _brute_force_axes(ct, mask: np.ndarray) -> tuple[int, float, list[tuple[np.ndarray, np.ndarray]]]:
    """The long-axis slice (first of ties), its longest pixel-centre distance and every pair attaining it."""
    best_slice, best, pairs = -1, -1.0, []
    for k in np.flatnonzero(mask.any(axis=(0, 1))):
        i, j = np.nonzero(mask[:, :, k])
        points = _world(ct, i, j, k)
        distances = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)
        longest = float(distances.max())
        if longest > best + 1e-6:
            a, b = np.nonzero(np.isclose(distances, longest, atol=1e-6, rtol=0))
            best_slice, best, pairs = int(k), longest, [(points[x], points[y]) for x, y in zip(a, b)]
    return best_slice, best, pairs


def _perpendicular_extent(ct, mask: np.ndarray, k: int, start: np.ndarray, end: np.ndarray) -> float:
    """Extent of the pixel centres on slice k across the in-plane direction perpendicular to start -> end."""
    i, j = np.nonzero(mask[:, :, k])
    points = _world(ct, i, j, k)
    length = np.linalg.norm(end - start)
    if length == 0:
        return 0.0
    normal = np.cross((end - start) / length, ct.volume.affine[:3, 2] / np.linalg.norm(ct.volume.affine[:3, 2]))
    projection = points @ normal
    return float(projection.max() - projection.min())


def test_sr_is_a_tid1500_measurement_report_by_the_livervae_device(real):
    ds = real.dataset
    assert ds.SOPClassUID == pydicom.uid.Comprehensive3DSRStorage and ds.Modality == "SR"
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert ds.CompletionFlag == "COMPLETE" and ds.VerificationFlag == "UNVERIFIED"
    assert (ds.Manufacturer, ds.ManufacturerModelName, ds.SoftwareVersions) == (
        "LiverVAE",
        "liver_tumor_ct_segmentation",
        __version__,
    )
    report = real.sr.content
    assert isinstance(report, hd.sr.MeasurementReport)
    (observer,) = report.get_observer_contexts(observer_type=codes.DCM.Device)
    device = observer.observer_identifying_attributes
    assert (device.name, device.manufacturer_name, device.model_name) == (
        "LiverVAE",
        "LiverVAE",
        "liver_tumor_ct_segmentation",
    )
    assert device.uid == device_observer_uid("liver_tumor_ct_segmentation")
    procedures = [item for item in ds.ContentSequence if item.ConceptNameCodeSequence[0].CodeValue == "121058"]
    assert [p.ConceptCodeSequence[0].CodeValue for p in procedures] == [PROCEDURE_REPORTED.value]
    groups = _groups(real.sr)
    assert list(groups) == ["Liver", "Liver tumour", "Lesion 1", "Lesion 2", "Lesion 3", "Lesion 4"]
    # Every group (6 volumetric, 4 long-axis polylines) names the algorithm, its version and the bundle's.
    assert _text_values(ds, "Algorithm Name") == ["LiverVAE"] * 10
    assert _text_values(ds, "Algorithm Version") == [__version__] * 10
    assert f"bundle_version={BUNDLE_VERSION}" in _text_values(ds, "Algorithm Parameters")


def _text_values(ds: pydicom.Dataset, meaning: str) -> list[str]:
    """The values of every TEXT content item named `meaning`, anywhere in the content tree."""
    found = []

    def walk(items):
        for item in items:
            if item.ValueType == "TEXT" and item.ConceptNameCodeSequence[0].CodeMeaning == meaning:
                found.append(str(item.TextValue))
            walk(item.get("ContentSequence", []))

    walk(ds.ContentSequence)
    return found


def test_liver_and_tumour_volumes_and_burden_match_voxel_counts(real):
    groups = _groups(real.sr)
    voxel_ml = _voxel_ml(real.ct)
    liver_ml = np.count_nonzero(real.label >= LIVER) * voxel_ml
    tumour_ml = np.count_nonzero(real.label == TUMOR) * voxel_ml
    liver = _value(groups["Liver"], codes.SCT.Volume)
    assert liver.unit.value == "ml" and liver.unit.scheme_designator == "UCUM"
    assert liver.value == pytest.approx(liver_ml, rel=1e-6)
    tumour = _value(groups["Liver tumour"], codes.SCT.Volume)
    assert tumour.value == pytest.approx(tumour_ml, rel=1e-6)
    burden = _value(groups["Liver tumour"], TUMOUR_BURDEN)
    assert burden.unit == codes.UCUM.Percent
    assert burden.value == pytest.approx(100 * tumour_ml / liver_ml, rel=1e-6)
    assert groups["Liver"].finding_type == codes.SCT.Liver
    assert groups["Liver"].finding_category == codes.SCT.Organ
    assert groups["Liver tumour"].finding_type == codes.SCT.Neoplasm
    assert [site.value for site in groups["Liver tumour"].finding_sites] == [codes.SCT.Liver]


def test_every_lesion_value_matches_an_independent_computation(real):
    groups = _groups(real.sr)
    voxel_ml = _voxel_ml(real.ct)
    hu = real.ct.volume.array.astype(np.float64)
    for number, mask in enumerate(real.lesions, start=1):
        group = groups[f"Lesion {number}"]
        assert group.finding_type == codes.SCT.Neoplasm
        assert group.finding_category == codes.SCT.MorphologicallyAbnormalStructure
        assert [site.value for site in group.finding_sites] == [codes.SCT.Liver]
        assert _value(group, codes.SCT.Volume).value == pytest.approx(mask.sum() * voxel_ml, rel=1e-6)

        k, longest, pairs = _brute_force_axes(real.ct, mask)
        long_axis = _value(group, codes.SCT.LongAxis)
        short_axis = _value(group, codes.SCT.ShortAxis)
        assert long_axis.unit == codes.UCUM.Millimeter and short_axis.unit == codes.UCUM.Millimeter
        assert long_axis.value == pytest.approx(longest, abs=1e-6)
        # Pairs tie on a disc; the short axis is the perpendicular extent for one of them.
        shorts = {round(_perpendicular_extent(real.ct, mask, k, a, b), 6) for a, b in pairs}
        assert round(short_axis.value, 6) in shorts
        for measurement in (long_axis, short_axis):
            (image,) = measurement.referenced_images
            assert image.referenced_sop_instance_uid == real.ct.sop_instance_uids[k]
            assert image.referenced_sop_class_uid == CTImageStorage

        mean = _value(group, codes.DCM.AttenuationCoefficient, codes.SCT.Mean)
        sd = _value(group, codes.DCM.AttenuationCoefficient, codes.SCT.StandardDeviation)
        assert mean.unit.value == "[hnsf'U]" and sd.unit.value == "[hnsf'U]"
        assert mean.value == pytest.approx(hu[mask].mean(), abs=1e-9)
        assert sd.value == pytest.approx(hu[mask].std(), abs=1e-9)
    pixel = real.ct.volume.spacing[0]
    assert _value(groups["Lesion 1"], codes.SCT.LongAxis).value == pytest.approx(20 * pixel, abs=1e-6)
    assert _brute_force_axes(real.ct, real.lesions[0])[0] == 41  # the first of the two widest slices
    assert _value(groups["Lesion 2"], codes.SCT.LongAxis).value == pytest.approx(math.hypot(14, 5) * pixel, abs=1e-6)
    assert _value(groups["Lesion 3"], codes.SCT.LongAxis).value == pytest.approx(8 * pixel, abs=1e-6)
    assert _value(groups["Lesion 3"], codes.SCT.ShortAxis).value == pytest.approx(0.0, abs=1e-9)
    assert _value(groups["Lesion 4"], codes.SCT.LongAxis).value == pytest.approx(6 * math.sqrt(2) * pixel, abs=1e-6)


def test_long_axis_polylines_join_two_lesion_pixels_on_the_long_axis_slice(real):
    volumetric = _groups(real.sr)
    planar = real.sr.content.get_image_measurement_groups()
    assert [g.tracking_identifier for g in planar] == [f"Lesion {n}" for n in range(1, 5)]
    for number, (group, mask) in enumerate(zip(planar, real.lesions), start=1):
        assert group.tracking_uid == volumetric[f"Lesion {number}"].tracking_uid
        k, longest, _ = _brute_force_axes(real.ct, mask)
        (source,) = group.source_images
        assert source.referenced_sop_instance_uid == real.ct.sop_instance_uids[k]
        (measurement,) = group.get_measurements(name=codes.SCT.LongAxis)
        (coordinates,) = measurement.referenced_coordinates
        assert coordinates.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
        assert coordinates.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == (
            real.ct.sop_instance_uids[k]
        )
        columns_rows = np.asarray(coordinates.value, dtype=np.float64) - 0.5  # pixel centres sit at +0.5
        index = np.rint(columns_rows).astype(int)
        assert np.allclose(columns_rows, index, atol=1e-3)
        assert all(mask[i, j, k] for i, j in index)
        ends = _world(real.ct, index[:, 0], index[:, 1], k)
        assert np.linalg.norm(ends[1] - ends[0]) == pytest.approx(longest, abs=1e-6)
        assert measurement.value == pytest.approx(longest, abs=1e-6)
        lesion = real.measurements.lesions[number - 1]
        assert np.allclose(ends, lesion.long_axis_endpoints_ras_mm, atol=1e-4)


def test_groups_reference_the_seg_segments_and_the_source_series(real):
    groups = _groups(real.sr)
    for name, group in groups.items():
        segment = group.referenced_segment
        item = segment[0].ReferencedSOPSequence[0]
        assert item.ReferencedSOPInstanceUID == real.seg_dataset.SOPInstanceUID
        assert item.ReferencedSOPClassUID == SegmentationStorage
        assert int(item.ReferencedSegmentNumber) == (LIVER if name == "Liver" else TUMOR)
        assert segment[1].name == codes.DCM.SourceSeriesForSegmentation
        assert segment[1].value == real.ct.series_uid
    segments = {int(s.SegmentNumber): s.SegmentLabel for s in real.seg_dataset.SegmentSequence}
    assert segments == {LIVER: "Liver", TUMOR: "Liver tumour"}
    assert len({g.tracking_uid for g in groups.values()}) == len(groups)


def test_sr_files_under_the_patient_and_study_of_the_seg_with_the_seg_as_evidence(real, real_case):
    ds, seg = real.dataset, real.seg_dataset
    same = [ds.get(k, "") == seg.get(k, "") for k in REQUIRED_PATIENT_STUDY_KEYWORDS]
    assert all(same), [k for k, ok in zip(REQUIRED_PATIENT_STUDY_KEYWORDS, same) if not ok]
    assert ds.StudyInstanceUID == real.ct.study_uid
    assert ds.SeriesInstanceUID not in (seg.SeriesInstanceUID, real.ct.series_uid)
    assert ds.SOPInstanceUID not in {seg.SOPInstanceUID, *real.ct.sop_instance_uids}
    assert int(ds.SeriesNumber) == int(seg.SeriesNumber) + 1
    source = pydicom.dcmread(real_case / "PATIENT_DICOM" / "image_0", stop_before_pixels=True)
    for keyword in ("InstitutionName", "AcquisitionDate", "FrameOfReferenceUID", "ImagePositionPatient"):
        assert keyword not in ds
    assert "InstitutionName" in source

    evidence = set(real.sr.get_evidence())
    study = ds.StudyInstanceUID
    lesion_slices = {real.ct.sop_instance_uids[_brute_force_axes(real.ct, m)[0]] for m in real.lesions}
    expected = {(study, seg.SeriesInstanceUID, seg.SOPInstanceUID, SegmentationStorage)}
    expected |= {(study, real.ct.series_uid, uid, CTImageStorage) for uid in lesion_slices}
    assert evidence == expected
    assert "PertinentOtherEvidenceSequence" not in ds


def test_sr_path_sits_next_to_the_seg():
    assert sr_path("out/case.dcm").as_posix() == "out/case_sr.dcm"
    assert sr_path("out/case.DCM").as_posix() == "out/case_sr.dcm"
    assert sr_path("out/case").as_posix() == "out/case_sr.dcm"
    assert sr_path("case.seg.dcm").as_posix() == "case.seg_sr.dcm"


@pytest.fixture(scope="module")
def dcmqi_case(dcmqi, tmp_path_factory):
    """The dcmqi 3-slice series; a liver-only SEG of it and a SEG whose liver holds a tumour blob."""
    ct = read_dicom_series(dcmqi / "ct")
    liver = read_dicom_seg_labels(dcmqi / "liver_seg.dcm", ct).array.copy()
    with_tumour = liver.copy()
    i, j = (int(np.median(a)) for a in np.nonzero(liver[:, :, 1] == LIVER))
    with_tumour[i - 5 : i + 5, j - 4 : j + 4, 1:3] = TUMOR
    out = tmp_path_factory.mktemp("dcmqi_sr")
    affine = ct.volume.affine.copy()
    return SimpleNamespace(
        ct=ct,
        liver=liver,
        with_tumour=with_tumour,
        liver_seg=write_dicom_seg(Volume(liver, affine, "liver"), ct, out / "liver.dcm"),
        tumour_seg=write_dicom_seg(Volume(with_tumour, affine, "tumour"), ct, out / "tumour.dcm"),
    )


def test_empty_case_writes_a_valid_sr_without_lesions(dcmqi_case, tmp_path):
    ct = dcmqi_case.ct
    empty = np.zeros(ct.volume.shape, dtype=np.uint8)
    seg = write_dicom_seg(Volume(empty, ct.volume.affine.copy(), "empty"), ct, tmp_path / "empty.dcm")
    measurements = measure_case(ct.volume, empty)
    assert math.isnan(measurements.tumor_burden_percent)
    sr = hd.sr.srread(write_dicom_sr(measurements, seg, ct, sr_path(seg)))
    groups = _groups(sr)
    assert list(groups) == ["Liver", "Liver tumour"]
    assert _value(groups["Liver"], codes.SCT.Volume).value == 0.0
    assert _value(groups["Liver tumour"], codes.SCT.Volume).value == 0.0
    assert groups["Liver tumour"].get_measurements(name=TUMOUR_BURDEN) == []  # no liver: no burden
    assert sr.content.get_image_measurement_groups() == []
    assert sr.get_evidence() == [(sr.StudyInstanceUID, *_seg_identity(seg))]


def _seg_identity(path) -> tuple[str, str, str]:
    seg = pydicom.dcmread(path, stop_before_pixels=True)
    return seg.SeriesInstanceUID, seg.SOPInstanceUID, seg.SOPClassUID


def test_small_series_sr_keeps_patient_names_out_of_logs_and_type3_attributes_out(
    dcmqi, dcmqi_case, tmp_path, caplog, recwarn
):
    ct = dcmqi_case.ct
    measurements = measure_case(ct.volume, dcmqi_case.with_tumour)
    assert measurements.lesion_count == 1
    with caplog.at_level("DEBUG"):
        path = write_dicom_sr(measurements, dcmqi_case.tumour_seg, ct, tmp_path / "sr.dcm")
    sr = pydicom.dcmread(path)
    source = pydicom.dcmread(dcmqi / "ct" / "01.dcm", stop_before_pixels=True)
    assert (sr.PatientName, sr.PatientID, sr.StudyInstanceUID) == (
        source.PatientName,
        source.PatientID,
        source.StudyInstanceUID,
    )
    said = caplog.text + " ".join(str(w.message) for w in recwarn)
    assert str(source.PatientName) not in said and str(source.PatientID) not in said
    for keyword in ("PatientAge", "StudyDescription"):
        assert keyword in source and keyword not in sr
    groups = _groups(hd.sr.Comprehensive3DSR.from_dataset(sr))
    assert list(groups) == ["Liver", "Liver tumour", "Lesion 1"]


def test_an_in_memory_seg_is_accepted_and_errors_then_name_the_sr(dcmqi_case, tmp_path):
    ct = dcmqi_case.ct
    label = Volume(dcmqi_case.with_tumour, ct.volume.affine.copy(), "tumour")
    seg = build_dicom_seg(label, ct)
    measurements = measure_case(ct.volume, dcmqi_case.with_tumour)
    sr = build_dicom_sr(measurements, seg, ct)
    assert isinstance(sr, hd.sr.Comprehensive3DSR)
    reference = (
        _groups(hd.sr.Comprehensive3DSR.from_dataset(sr))["Lesion 1"].referenced_segment[0].ReferencedSOPSequence[0]
    )
    assert reference.ReferencedSOPInstanceUID == seg.SOPInstanceUID
    bad = dataclasses.replace(measurements, lesion_count=2)
    target = tmp_path / "case_sr.dcm"
    with pytest.raises(InputError, match="count 2 lesions but list 1") as caught:
        write_dicom_sr(bad, seg, ct, target)
    assert caught.value.path == str(target)
    assert list(tmp_path.iterdir()) == []


def _moved_lesion(measurements, **changes):
    lesions = list(measurements.lesions)
    lesions[0] = dataclasses.replace(lesions[0], **changes)
    return dataclasses.replace(measurements, lesions=tuple(lesions))


@pytest.mark.parametrize(
    "case, message",
    [
        ("other_series", "does not reference the CT series"),
        ("not_a_seg", "is not a DICOM Segmentation"),
        ("missing", "cannot read the DICOM-SEG"),
        ("no_tumour_frames", r"1 lesion\(s\), the SEG has no tumour segment frames"),
        ("count", "count 3 lesions but list 1"),
        ("slice_outside", "lies on slice 7, not in the series"),
        ("slice_without_tumour", "lies on slice 0, where the SEG has no tumour"),
        ("volumes", "the lesions add up to"),
    ],
)
def test_bad_seg_or_inconsistent_measurements_are_refused_and_nothing_is_written(
    dcmqi, dcmqi_case, request, tmp_path, case, message
):
    ct, seg = dcmqi_case.ct, dcmqi_case.tumour_seg
    measurements = measure_case(ct.volume, dcmqi_case.with_tumour)
    if case == "other_series":  # the dcmqi SEG given with the real series
        ct = request.getfixturevalue("real").ct
        measurements = measure_case(ct.volume, np.zeros(ct.volume.shape, dtype=np.uint8))
    elif case == "not_a_seg":
        seg = dcmqi / "ct" / "01.dcm"
    elif case == "missing":
        seg = tmp_path.parent / "no_such_seg.dcm"
    elif case == "no_tumour_frames":
        seg = dcmqi_case.liver_seg
    elif case == "count":
        measurements = dataclasses.replace(measurements, lesion_count=3)
    elif case == "slice_outside":
        measurements = _moved_lesion(measurements, long_axis_slice=7)
    elif case == "slice_without_tumour":
        measurements = _moved_lesion(measurements, long_axis_slice=0)
    elif case == "volumes":
        measurements = _moved_lesion(measurements, volume_ml=measurements.lesions[0].volume_ml * 2)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError, match=message) as caught:
        write_dicom_sr(measurements, seg, ct, out / "case_sr.dcm")
    assert caught.value.path == str(seg)
    assert list(out.iterdir()) == []
