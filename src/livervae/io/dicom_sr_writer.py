"""Write a case's measurements as a DICOM Comprehensive 3D SR (TID 1500 Measurement Report) beside its DICOM-SEG.

The SR (highdicom) files under the patient and study of the CT and the SEG, in a series of its own, and says:

- Observer: a device (TID 1004) named LiverVAE, manufacturer "LiverVAE", model = the bundle name, with a Device
  Observer UID derived from the bundle name. The LiverVAE version is the SR's SoftwareVersions and the version of
  the algorithm identification (TID 4019) of every measurement group; TID 1004 has no row for a software version.
- Procedure reported: LN 24627-2 "CT Abdomen".
- Imaging measurements, one measurement group each:

  - "Liver": TID 1411 volumetric ROI referencing SEG segment 1 (finding category SCT Organ, finding SCT Liver):
    Volume (SCT 118565006) in mL (UCUM "ml"). This is the whole liver, tumours included (label >= 1), the volume
    `livervae.measurements` reports and the tumour burden divides by; segment 1 alone is the liver outside the
    tumours (liver minus tumour).
  - "Liver tumour": TID 1411 referencing segment 2 (category SCT Morphologically Abnormal Structure, finding SCT
    Neoplasm, finding site SCT Liver): Volume in mL and, when there is liver, the tumour burden in % (UCUM "%").
    DICOM has no concept for tumour burden as a share of the organ's volume, so it is the private code
    ("TUMOURBURDEN", "99LIVERVAE", "Tumour burden (tumour volume as percent of liver volume)").
  - "Lesion k" (k = 1... in order of decreasing volume, as `livervae.measurements` numbers them), each with its
    own tracking UID: TID 1411 referencing segment 2 (a lesion is one 26-connected component of it), finding
    Neoplasm in the Liver: Volume (mL); Long axis (SCT 103339001) and Short axis (SCT 103340004) in mm, each
    inferred from the CT slice that holds the long axis (Source of Measurement); mean and standard deviation of the
    CT attenuation: Attenuation Coefficient (DCM 112031) with derivation SCT Mean / SCT Standard Deviation, in
    UCUM "[hnsf'U]".
  - "Lesion k" again, same tracking identifier and UID: a TID 1501 group on that CT slice whose Long axis
    measurement is inferred from a 2D POLYLINE (SCOORD) joining the two pixel centres of the long axis, so viewers
    can draw it. (TID 1411 groups may not carry coordinates, hence the second group.)

- Evidence: the SEG and the CT slices the lesion groups reference.

The lesion count is the number of "Lesion k" TID 1411 groups. An empty case still gives a valid SR: liver and
tumour volume 0, no burden (there is no liver to divide by), no lesion groups.

Not in the SR: each lesion's centroid (a TID 1411 group has no place for a bare 3D point) and its voxel count.
They are in the `<name>.json` / `<name>.csv` files `livervae.measurements.write_measurements` writes beside the
outputs, with every value here.

Only the Type 1/2 Patient and General Study attributes the SEG writer copies
(`livervae.io.dicom_seg_writer.REQUIRED_PATIENT_STUDY_KEYWORDS`) are taken, from the SEG, which must reference the
same series and study as the CT. Patient names and IDs are never logged.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import CTImageStorage, SegmentationStorage, generate_uid

from livervae import __version__
from livervae.bundle_names import TUMOR_BUNDLE
from livervae.errors import InputError
from livervae.io.dicom_seg_writer import (
    REQUIRED_PATIENT_STUDY_KEYWORDS,
    SEGMENTS,
    device_identity,
    quiet_person_name_warnings,
    save_dicom,
)
from livervae.io.dicom_series import DicomSeries
from livervae.labels import LIVER, TUMOR
from livervae.measurements import CaseMeasurements, LesionMeasurement

logger = logging.getLogger(__name__)

MILLILITRE = hd.sr.CodedConcept("ml", "UCUM", "milliliter")
HOUNSFIELD_UNIT = codes.UCUM.HounsfieldUnit
TUMOUR_BURDEN = hd.sr.CodedConcept(
    "TUMOURBURDEN", "99LIVERVAE", "Tumour burden (tumour volume as percent of liver volume)"
)
PROCEDURE_REPORTED = hd.sr.CodedConcept("24627-2", "LN", "CT Abdomen")
SR_SUFFIX = "_sr.dcm"
SR_SERIES_DESCRIPTION = "LiverVAE liver and tumour measurements"
_DEVICE_UID_SEED = "livervae-device-observer"
# Volumes summed over lesions may differ from the tumour volume by rounding only.
_VOLUME_RTOL = 1e-6
_SLICE_ATOL = 1e-3


def sr_path(seg_path: str | os.PathLike[str]) -> Path:
    """Where the SR of a SEG goes: `<name>_sr.dcm` next to `<name>.dcm` (any other name gets `_sr.dcm` added)."""
    seg_path = Path(seg_path)
    name = seg_path.name
    if name.lower().endswith(".dcm") and len(name) > 4:
        name = name[:-4]
    return seg_path.with_name(name + SR_SUFFIX)


def device_observer_uid(bundle: str) -> str:
    """The Device Observer UID LiverVAE reports for `bundle`: the same for every report the bundle makes."""
    return generate_uid(entropy_srcs=[_DEVICE_UID_SEED, bundle])


def _load_seg(seg: pydicom.Dataset | str | os.PathLike[str], fallback_name: str | None) -> tuple[pydicom.Dataset, str]:
    """The SEG dataset (read without pixels when given a path) and the name errors give it.

    A SEG that was read from a file is named by it; one built in memory by `fallback_name` (`write_dicom_sr`
    gives the SR's path), else by its SOP Instance UID.
    """
    if isinstance(seg, pydicom.Dataset):
        filename = getattr(seg, "filename", None)
        if isinstance(filename, (str, os.PathLike)):
            return seg, str(filename)
        return seg, fallback_name or f"DICOM-SEG {seg.get('SOPInstanceUID', '')}"
    path = Path(seg)
    try:
        return pydicom.dcmread(path, stop_before_pixels=True), str(path)
    except Exception as exc:
        raise InputError(path, f"cannot read the DICOM-SEG ({type(exc).__name__}: {exc})") from exc


def _segment_frames(seg: pydicom.Dataset) -> dict[int, set[str | None]]:
    """For each segment with frames: the source instances its frames name (None for a frame naming none)."""
    frames: dict[int, set[str | None]] = {}
    for item in seg.get("PerFrameFunctionalGroupsSequence", []):
        try:
            number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        except (AttributeError, IndexError):
            continue
        source = None
        try:
            source = str(item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        except (AttributeError, IndexError):
            pass
        frames.setdefault(number, set()).add(source)
    return frames


def _check_seg(seg: pydicom.Dataset, ct: DicomSeries, name: str) -> dict[str, str]:
    """Refuse a SEG that is not a segmentation of `ct`; return its referenced CT instances (UID -> SOP class)."""
    if str(seg.get("SOPClassUID", "")) != SegmentationStorage:
        raise InputError(name, "is not a DICOM Segmentation")
    referenced: dict[str, str] = {}
    for series in seg.get("ReferencedSeriesSequence", []):
        if str(series.get("SeriesInstanceUID", "")) == ct.series_uid:
            for item in series.get("ReferencedInstanceSequence", []):
                referenced[str(item.ReferencedSOPInstanceUID)] = str(item.get("ReferencedSOPClassUID", CTImageStorage))
    if not referenced or not set(referenced) & set(ct.sop_instance_uids):
        raise InputError(name, f"the DICOM-SEG does not reference the CT series {ct.series_uid}")
    if ct.study_uid and str(seg.get("StudyInstanceUID", "")) != ct.study_uid:
        raise InputError(name, "the DICOM-SEG belongs to another study than the CT series")
    types = {}
    for item in seg.get("SegmentSequence", []):
        try:
            code = item.SegmentedPropertyTypeCodeSequence[0]
            types[int(item.SegmentNumber)] = (str(code.CodeValue), str(code.CodingSchemeDesignator))
        except (AttributeError, IndexError):
            continue
    for info in SEGMENTS:
        expected = (info.property_type.value, info.property_type.scheme_designator)
        if info.value in types and types[info.value] != expected:
            raise InputError(name, f"segment {info.value} of the DICOM-SEG is not '{info.label}'")
    if LIVER not in types:
        raise InputError(name, f"the DICOM-SEG has no segment {LIVER} (Liver)")
    return referenced


def _check_measurements(measurements: CaseMeasurements, ct: DicomSeries, name: str) -> None:
    """Refuse measurements that cannot describe a case of `ct` (counts, numbering, values, slice axis)."""
    m = measurements
    if m.lesion_count != len(m.lesions):
        raise InputError(name, f"the measurements count {m.lesion_count} lesions but list {len(m.lesions)}")
    if [lesion.number for lesion in m.lesions] != list(range(1, len(m.lesions) + 1)):
        raise InputError(name, "the lesions are not numbered 1, 2, ... in order")
    for label, value in (("liver volume", m.liver_ml), ("tumour volume", m.tumor_ml)):
        if not (math.isfinite(value) and value >= 0):
            raise InputError(name, f"the {label} {value} is not a volume")
    if m.tumor_ml > m.liver_ml * (1 + _VOLUME_RTOL):
        raise InputError(name, "the measurements give more tumour than liver")
    lesion_ml = sum(lesion.volume_ml for lesion in m.lesions)
    if not math.isclose(lesion_ml, m.tumor_ml, rel_tol=_VOLUME_RTOL, abs_tol=1e-9):
        raise InputError(name, f"the lesions add up to {lesion_ml:.4f} mL, the tumour volume is {m.tumor_ml:.4f} mL")
    if m.lesions and m.slice_axis != 2:
        raise InputError(name, f"the measurements take axis {m.slice_axis} as the slice axis, the series' is 2")
    for lesion in m.lesions:
        values = (lesion.volume_ml, lesion.long_axis_mm, lesion.short_axis_mm, lesion.mean_hu, lesion.sd_hu)
        if not all(math.isfinite(v) for v in values) or min(values[:3]) < 0 or lesion.sd_hu < 0:
            raise InputError(name, f"lesion {lesion.number} has invalid measurements")
        if not 0 <= lesion.long_axis_slice < len(ct.sop_instance_uids):
            raise InputError(name, f"lesion {lesion.number} lies on slice {lesion.long_axis_slice}, not in the series")


def _check_against_seg(measurements: CaseMeasurements, frames: dict[int, set[str | None]], name: str) -> None:
    """Refuse measurements of structures the SEG does not hold (e.g. lesions but no tumour segment)."""
    parenchyma_ml = measurements.liver_ml - measurements.tumor_ml
    if parenchyma_ml > _VOLUME_RTOL * max(measurements.liver_ml, 1.0) and LIVER not in frames:
        raise InputError(name, f"the measurements give {measurements.liver_ml:.1f} mL of liver, the SEG has none")
    if (measurements.tumor_ml > 0 or measurements.lesions) and TUMOR not in frames:
        raise InputError(
            name, f"the measurements give {measurements.lesion_count} lesion(s), the SEG has no tumour segment frames"
        )


def _lesion_slice_check(lesion: LesionMeasurement, uid: str, frames: dict[int, set[str | None]], name: str) -> None:
    """Refuse a lesion whose long-axis slice has no tumour frame in the SEG (when its frames name their sources)."""
    named = frames.get(TUMOR, set())
    if None not in named and uid not in named:
        raise InputError(
            name, f"lesion {lesion.number} lies on slice {lesion.long_axis_slice}, where the SEG has no tumour"
        )


def _long_axis_pixels(lesion: LesionMeasurement, ct: DicomSeries, name: str) -> np.ndarray:
    """The long axis endpoints as (column, row) image coordinates on its slice (pixel centres are at +0.5)."""
    inverse = np.linalg.inv(ct.volume.affine)
    points = np.asarray(lesion.long_axis_endpoints_ras_mm, dtype=np.float64)
    index = points @ inverse[:3, :3].T + inverse[:3, 3]
    if not np.allclose(index[:, 2], lesion.long_axis_slice, atol=_SLICE_ATOL):
        raise InputError(name, f"lesion {lesion.number}'s long axis is not on its slice {lesion.long_axis_slice}")
    # The volume's first index is the image column, its second the row (NIfTI order of the DICOM pixels).
    return index[:, :2] + 0.5


def _reduced_seg(seg: pydicom.Dataset) -> pydicom.Dataset:
    """What the SR takes from the SEG: its identity and the required Patient / General Study attributes."""
    reduced = pydicom.Dataset()
    for keyword in ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"):
        setattr(reduced, keyword, seg.get(keyword, ""))
    for keyword in REQUIRED_PATIENT_STUDY_KEYWORDS:
        if keyword in seg:
            reduced[keyword] = seg[keyword]
        elif keyword != "StudyInstanceUID":
            setattr(reduced, keyword, "")  # Type 2: present, empty when the SEG lacks it
    return reduced


def _instance(sop_class_uid: str, sop_instance_uid: str, series_uid: str, study_uid: str) -> pydicom.Dataset:
    """A stand-in for a referenced CT slice: the identity the SR's evidence lists."""
    dataset = pydicom.Dataset()
    dataset.SOPClassUID = sop_class_uid
    dataset.SOPInstanceUID = sop_instance_uid
    dataset.SeriesInstanceUID = series_uid
    dataset.StudyInstanceUID = study_uid
    return dataset


def _volume(value_ml: float) -> hd.sr.Measurement:
    """A Volume measurement in mL."""
    return hd.sr.Measurement(name=codes.SCT.Volume, value=float(value_ml), unit=MILLILITRE)


def _lesion_groups(
    lesion: LesionMeasurement,
    segment: hd.sr.ReferencedSegment,
    source: tuple[str, str],
    pixels: np.ndarray,
    algorithm: hd.sr.AlgorithmIdentification,
) -> list[hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations | hd.sr.MeasurementsAndQualitativeEvaluations]:
    """The two groups of one lesion: its TID 1411 measurements and its long-axis polyline (TID 1501)."""
    sop_class_uid, sop_instance_uid = source
    tracking_uid = hd.UID()
    identifier = f"Lesion {lesion.number}"
    finding = {
        "finding_category": codes.SCT.MorphologicallyAbnormalStructure,
        "finding_type": codes.SCT.Neoplasm,
        "finding_sites": [hd.sr.FindingSite(codes.SCT.Liver)],
        "algorithm_id": algorithm,
    }

    def on_slice() -> list[hd.sr.SourceImageForMeasurement]:
        """A fresh reference to the long-axis slice (content items cannot be shared between measurements)."""
        return [hd.sr.SourceImageForMeasurement(sop_class_uid, sop_instance_uid)]

    measurements = [
        _volume(lesion.volume_ml),
        hd.sr.Measurement(
            name=codes.SCT.LongAxis,
            value=float(lesion.long_axis_mm),
            unit=codes.UCUM.Millimeter,
            referenced_images=on_slice(),
        ),
        hd.sr.Measurement(
            name=codes.SCT.ShortAxis,
            value=float(lesion.short_axis_mm),
            unit=codes.UCUM.Millimeter,
            referenced_images=on_slice(),
        ),
        hd.sr.Measurement(
            name=codes.DCM.AttenuationCoefficient,
            value=float(lesion.mean_hu),
            unit=HOUNSFIELD_UNIT,
            derivation=codes.SCT.Mean,
        ),
        hd.sr.Measurement(
            name=codes.DCM.AttenuationCoefficient,
            value=float(lesion.sd_hu),
            unit=HOUNSFIELD_UNIT,
            derivation=codes.SCT.StandardDeviation,
        ),
    ]
    volumetric = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=tracking_uid, identifier=identifier),
        referenced_segment=segment,
        measurements=measurements,
        **finding,
    )
    polyline = hd.sr.CoordinatesForMeasurement(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=pixels,
        source_image=hd.sr.SourceImageForRegion(sop_class_uid, sop_instance_uid),
    )
    long_axis = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=tracking_uid, identifier=identifier),
        measurements=[
            hd.sr.Measurement(
                name=codes.SCT.LongAxis,
                value=float(lesion.long_axis_mm),
                unit=codes.UCUM.Millimeter,
                referenced_coordinates=[polyline],
            )
        ],
        source_images=[hd.sr.SourceImageForMeasurementGroup(sop_class_uid, sop_instance_uid)],
        **finding,
    )
    return [volumetric, long_axis]


def build_dicom_sr(
    measurements: CaseMeasurements,
    seg: pydicom.Dataset | str | os.PathLike[str],
    ct: DicomSeries,
    bundle: str = TUMOR_BUNDLE,
    bundle_version: str = "",
    series_number: int | None = None,
    series_description: str = SR_SERIES_DESCRIPTION,
    seg_name: str | None = None,
) -> hd.sr.Comprehensive3DSR:
    """Build (not write) the TID 1500 measurement report of a case, referencing its SEG and CT series.

    Args:
        measurements: the case's measurements (`livervae.measurements.measure_case` on `ct.volume` and the label
            map the SEG holds).
        seg: the SEG of the case: the `highdicom.seg.Segmentation` `build_dicom_seg` returned, a dataset read
            from it, or its path.
        ct: the CT series the SEG and the measurements were made on.
        bundle: the bundle that made the labels (the observer device's model name).
        bundle_version: its version (named in the algorithm identification).
        series_number: the SR's SeriesNumber; default the SEG's + 1.
        series_description: the SR's SeriesDescription.
        seg_name: what errors call a SEG given in memory (one read from a file is named by the file); default its
            SOP Instance UID.

    Returns:
        The SR document; see the module docstring for its content.

    Raises:
        InputError: a SEG that is unreadable, not a segmentation of `ct`, or that does not hold what the
            measurements describe (e.g. lesions but no tumour), or measurements inconsistent in themselves.
            The message names the SEG file (an in-memory SEG by `seg_name`, else its SOP Instance UID).
    """
    seg, name = _load_seg(seg, seg_name)
    referenced = _check_seg(seg, ct, name)
    _check_measurements(measurements, ct, name)
    frames = _segment_frames(seg)
    _check_against_seg(measurements, frames, name)

    algorithm = hd.sr.AlgorithmIdentification(
        name="LiverVAE",
        version=__version__,
        parameters=[f"bundle={bundle}", f"bundle_version={bundle_version or 'unknown'}"],
    )

    def segment(number: int) -> hd.sr.ReferencedSegment:
        """A reference to segment `number` of the SEG, made from the CT series."""
        return hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID,
            sop_instance_uid=seg.SOPInstanceUID,
            segment_number=number,
            source_series=hd.sr.SourceSeriesForSegmentation(ct.series_uid),
        )

    groups: list = [
        hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="Liver"),
            referenced_segment=segment(LIVER),
            finding_category=codes.SCT.Organ,
            finding_type=codes.SCT.Liver,
            algorithm_id=algorithm,
            measurements=[_volume(measurements.liver_ml)],
        )
    ]
    has_tumour_segment = any(int(item.SegmentNumber) == TUMOR for item in seg.get("SegmentSequence", []))
    if has_tumour_segment:
        tumour = [_volume(measurements.tumor_ml)]
        if math.isfinite(measurements.tumor_burden_percent):
            tumour.append(
                hd.sr.Measurement(
                    name=TUMOUR_BURDEN, value=float(measurements.tumor_burden_percent), unit=codes.UCUM.Percent
                )
            )
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="Liver tumour"),
                referenced_segment=segment(TUMOR),
                finding_category=codes.SCT.MorphologicallyAbnormalStructure,
                finding_type=codes.SCT.Neoplasm,
                finding_sites=[hd.sr.FindingSite(codes.SCT.Liver)],
                algorithm_id=algorithm,
                measurements=tumour,
            )
        )
    slices: dict[str, pydicom.Dataset] = {}
    for lesion in measurements.lesions:
        uid = ct.sop_instance_uids[lesion.long_axis_slice]
        if uid not in referenced:
            raise InputError(name, f"the DICOM-SEG does not reference slice {lesion.long_axis_slice} of the CT")
        _lesion_slice_check(lesion, uid, frames, name)
        pixels = _long_axis_pixels(lesion, ct, name)
        groups.extend(_lesion_groups(lesion, segment(TUMOR), (referenced[uid], uid), pixels, algorithm))
        slices[uid] = _instance(referenced[uid], uid, ct.series_uid, str(seg.StudyInstanceUID))

    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=device_observer_uid(bundle), name="LiverVAE", manufacturer_name="LiverVAE", model_name=bundle
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=PROCEDURE_REPORTED,
        imaging_measurements=groups,
    )
    if series_number is None:
        series_number = int(seg.get("SeriesNumber", 0) or 0) + 1
    evidence = [_reduced_seg(seg), *slices.values()]
    return quiet_person_name_warnings(
        lambda: hd.sr.Comprehensive3DSR(
            evidence=evidence,
            content=report,
            series_instance_uid=hd.UID(),
            series_number=series_number,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            series_description=series_description,
            is_complete=True,
            **device_identity(bundle),
        ),
        copied_from="the SEG",
    )


def write_dicom_sr(
    measurements: CaseMeasurements,
    seg: pydicom.Dataset | str | os.PathLike[str],
    ct: DicomSeries,
    path: str | os.PathLike[str],
    bundle: str = TUMOR_BUNDLE,
    bundle_version: str = "",
    series_number: int | None = None,
    series_description: str = SR_SERIES_DESCRIPTION,
) -> Path:
    """Write the measurement report of a case to `path` atomically and return the path.

    See `build_dicom_sr` for the arguments, what the SR holds and the errors (a SEG built in memory is named by
    `path` in them); on an error nothing is written. `sr_path(seg_path)` gives the usual name beside the SEG.
    """
    path = Path(path)
    sr = build_dicom_sr(
        measurements, seg, ct, bundle, bundle_version, series_number, series_description, seg_name=str(path)
    )
    return save_dicom(sr, path)
