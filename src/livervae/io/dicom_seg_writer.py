"""Write a 0/1/2 label map as a DICOM Segmentation (highdicom) that references the CT series it was made from.

The SEG holds two segments, Liver (SCT 10200004) and Liver tumour (Neoplasm, SCT 108369006, in the liver), as a
BINARY segmentation with one frame per source slice and segment (empty frames omitted). Every frame references
its source instance and carries that slice's plane position, so viewers and PACS place it exactly on the CT. The
algorithm identification names LiverVAE, its version and the bundle that produced the labels.

Only what the Segmentation IOD requires is taken from the source: the Type 1/2 attributes of the Patient and
General Study modules (so the SEG files under the same patient and study), the UIDs and the geometry. Nothing
else of the source headers (institution, protocol, ages, comments...) is carried over.

Some research series (3D-IRCADb) have no FrameOfReferenceUID, which a SEG cannot do without. Then one UID is
derived deterministically from the SeriesInstanceUID and set on the source headers in memory only (the files are
never changed), so writing the same series twice gives the same frame of reference.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import RLELossless, generate_uid

from livervae import __version__
from livervae.bundle_names import TUMOR_BUNDLE
from livervae.errors import InputError
from livervae.io.atomic import atomic_path
from livervae.io.dicom_series import DicomSeries
from livervae.io.volume import Volume
from livervae.labels import LIVER, TUMOR, VALID_LABELS

logger = logging.getLogger(__name__)

# Patient and General Study module attributes of Type 1 or 2: required by the Segmentation IOD, copied from the
# source by highdicom. Everything else of those modules (Type 3, and the optional modules) is left out.
REQUIRED_PATIENT_STUDY_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)
# What highdicom reads from each single-frame source image to reference it and derive the frame geometry.
_SOURCE_KEYWORDS = (
    "SOPClassUID",
    "SOPInstanceUID",
    "SeriesInstanceUID",
    "FrameOfReferenceUID",
    "Modality",
    "SeriesNumber",
    "InstanceNumber",
    "Rows",
    "Columns",
    "PixelSpacing",
    "ImageOrientationPatient",
    "ImagePositionPatient",
    "SliceThickness",
    "SpacingBetweenSlices",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
)
_FRAME_OF_REFERENCE_SEED = "livervae-frame-of-reference"

_T = TypeVar("_T")


@dataclass(frozen=True)
class SegmentInfo:
    """How one label value is described in the SEG."""

    value: int
    label: str
    category: object
    property_type: object
    anatomic_region: object | None
    colour: tuple[int, int, int]


SEGMENTS = (
    SegmentInfo(LIVER, "Liver", codes.SCT.Organ, codes.SCT.Liver, None, (221, 130, 101)),
    SegmentInfo(
        TUMOR,
        "Liver tumour",
        codes.SCT.MorphologicallyAbnormalStructure,
        codes.SCT.Neoplasm,
        codes.SCT.Liver,
        (255, 0, 0),
    ),
)


# The FRACTIONAL SEG's segments: the same concepts, labelled as the probabilities they hold.
PROBABILITY_SEGMENTS = (
    replace(SEGMENTS[0], label="Liver probability (tumours included)"),
    replace(SEGMENTS[1], label="Liver tumour probability"),
)


def device_identity(bundle: str) -> dict[str, Any]:
    """The equipment and character set every LiverVAE DICOM object names (keyword arguments of highdicom's SEG and
    SR constructors): manufacturer "LiverVAE", model = the bundle, the LiverVAE version as software version, no
    serial number, and UTF-8, so any patient name copied from the source can be encoded."""
    return {
        "manufacturer": "LiverVAE",
        "manufacturer_model_name": bundle,
        "software_versions": __version__,
        "device_serial_number": "none",
        "specific_character_set": "ISO_IR 192",
    }


def quiet_person_name_warnings(make: Callable[[], _T], copied_from: str = "the source") -> _T:
    """Call `make` (a highdicom constructor), passing on its warnings except the person-name ones.

    highdicom quotes the patient name when it doubts its format; those warnings become one log line that says
    what they mean without the name (`copied_from` says where the name came from). Others are re-issued.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = make()
    for warning in caught:
        if "person name" in str(warning.message).lower():
            logger.info("a person name copied from %s has a single component; kept unchanged", copied_from)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return result


def save_dicom(dataset: pydicom.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write a DICOM object (with its file meta information) to `path` atomically and return the path.

    Raises:
        OutputError: the folder cannot be written; nothing is left behind.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        dataset.save_as(tmp, enforce_file_format=True)
    return path


def derived_frame_of_reference_uid(series_uid: str) -> str:
    """The FrameOfReferenceUID LiverVAE gives a series that has none: a function of its SeriesInstanceUID."""
    return generate_uid(entropy_srcs=[_FRAME_OF_REFERENCE_SEED, series_uid])


def _reduced_header(path: Path, frame_of_reference_uid: str) -> pydicom.Dataset:
    """The parts of a source header that the SEG needs, with the frame of reference filled in (in memory)."""
    try:
        full = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:
        raise InputError(path, f"cannot read DICOM header ({type(exc).__name__}: {exc})") from exc
    reduced = pydicom.Dataset()
    for keyword in (*_SOURCE_KEYWORDS, *REQUIRED_PATIENT_STUDY_KEYWORDS):
        if keyword in full:
            reduced[keyword] = full[keyword]
    for keyword in REQUIRED_PATIENT_STUDY_KEYWORDS:
        if keyword not in reduced and keyword != "StudyInstanceUID":
            setattr(reduced, keyword, "")  # Type 2: present, empty when the source lacks it
    if "SpecificCharacterSet" in full:
        reduced.SpecificCharacterSet = full.SpecificCharacterSet
    reduced.FrameOfReferenceUID = frame_of_reference_uid
    return reduced


def _check_label(label: Volume, ct: DicomSeries, path: Path) -> np.ndarray:
    if not label.same_grid(ct.volume):
        raise InputError(path, f"the label map is not on the CT series' grid ({label.shape} vs {ct.volume.shape})")
    values = set(np.unique(label.array).tolist())
    if not values <= VALID_LABELS:
        raise InputError(path, f"label values {sorted(values - VALID_LABELS)} are not 0 background, 1 liver, 2 tumour")
    return np.asarray(label.array, dtype=np.uint8)


def build_dicom_seg(
    label: Volume,
    ct: DicomSeries,
    bundle: str = TUMOR_BUNDLE,
    bundle_version: str = "",
    series_number: int | None = None,
    series_description: str = "LiverVAE liver and tumour",
    segments: Sequence[SegmentInfo] = SEGMENTS,
) -> hd.seg.Segmentation:
    """Build (not write) the DICOM Segmentation of `label`, a 0/1/2 map on the grid of the CT series `ct`.

    Args:
        label: the label map on `ct.volume`'s grid (NIfTI index order), values 0, 1 (liver), 2 (tumour).
        ct: the series read by `read_dicom_series`; its files give the source headers.
        bundle: the bundle that made the labels (named in the algorithm identification).
        bundle_version: its version (from the bundle's metadata.json).
        series_number: the SEG's SeriesNumber; default 1000 + the source's.
        series_description: the SEG's SeriesDescription.

    Raises:
        InputError: a label map off the CT grid or with other values, or an unreadable source header.
    """
    target = Path(ct.volume.source or "label map")
    array = _check_label(label, ct, target)
    # highdicom wants (frames, rows, columns) in source order: frame k is CT slice k, rows along the array's j axis.
    pixels = np.ascontiguousarray(array.transpose(2, 1, 0))
    sources, descriptions, series_number = _seg_parts(ct, bundle, bundle_version, segments, series_number)
    omit_empty = bool(array.any())
    binary = {"segmentation_type": hd.seg.SegmentationTypeValues.BINARY}
    return _segmentation(sources, pixels, descriptions, series_number, bundle, series_description, omit_empty, **binary)


def build_probability_seg(
    probabilities: np.ndarray,
    ct: DicomSeries,
    bundle: str = TUMOR_BUNDLE,
    bundle_version: str = "",
    series_number: int | None = None,
    series_description: str = "LiverVAE liver and tumour probability",
) -> hd.seg.Segmentation:
    """Build (not write) a FRACTIONAL (probability) DICOM Segmentation of the stage probabilities on `ct`'s grid.

    Segment 1 is P(liver) (tumours included, as `livervae.uncertainty` defines it), segment 2 P(tumour), stored
    as 8-bit fractions (maximum fractional value 255, RLE Lossless), one frame per source slice and segment with
    the same references and geometry as the label SEG (`build_dicom_seg`); viewers that show FRACTIONAL SEGs (3D
    Slicer, OHIF) draw them as probability maps.

    Args:
        probabilities: (2, *ct.volume.shape) P(liver), P(tumour) in [0, 1].
        ct: the series read by `read_dicom_series`.
        bundle: the bundle that made them.
        bundle_version: its version.
        series_number: the SEG's SeriesNumber; default 1001 + the source's (the label SEG takes 1000 + it).
        series_description: the SEG's SeriesDescription.

    Raises:
        InputError: maps off the CT grid or outside [0, 1].
    """
    target = Path(ct.volume.source or "probability map")
    array = np.asarray(probabilities, dtype=np.float32)
    if array.shape != (len(PROBABILITY_SEGMENTS), *ct.volume.shape):
        raise InputError(target, f"probability maps of shape {array.shape} are not 2 maps on the CT's grid")
    if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
        raise InputError(target, "probabilities must lie in [0, 1]")
    pixels = np.ascontiguousarray(array.transpose(3, 2, 1, 0))  # (frames, rows, columns, segments)
    sources, descriptions, number = _seg_parts(ct, bundle, bundle_version, PROBABILITY_SEGMENTS, series_number)
    series_number = number + 1 if series_number is None else number  # beside the label SEG's 1000 + source
    fractional = {
        "segmentation_type": hd.seg.SegmentationTypeValues.FRACTIONAL,
        "fractional_type": hd.seg.SegmentationFractionalTypeValues.PROBABILITY,
        "max_fractional_value": 255,
        "transfer_syntax_uid": RLELossless,  # 62 -> 5 MB on the real CT; smooth maps compress well
    }
    return _segmentation(sources, pixels, descriptions, series_number, bundle, series_description, True, **fractional)


def _seg_parts(
    ct: DicomSeries, bundle: str, bundle_version: str, segments: Sequence[SegmentInfo], series_number: int | None
) -> tuple[list[pydicom.Dataset], list[hd.seg.SegmentDescription], int]:
    """The reduced source headers, the segment descriptions and the series number of a SEG of `ct`."""
    frame_of_reference = ct.frame_of_reference_uid
    if not frame_of_reference:
        frame_of_reference = derived_frame_of_reference_uid(ct.series_uid)
        logger.warning(
            "series has no FrameOfReferenceUID; the SEG uses one derived from its SeriesInstanceUID (%s)",
            frame_of_reference,
        )
    sources = [_reduced_header(path, frame_of_reference) for path in ct.files]
    algorithm = hd.AlgorithmIdentificationSequence(
        name="LiverVAE",
        family=codes.DCM.ArtificialIntelligence,
        version=__version__,
        source=f"LiverVAE {__version__}, bundle {bundle} {bundle_version}".strip(),
        parameters={"bundle": bundle, "bundle_version": bundle_version or "unknown"},
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=info.value,
            segment_label=info.label,
            segmented_property_category=info.category,
            segmented_property_type=info.property_type,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            anatomic_regions=[info.anatomic_region] if info.anatomic_region is not None else None,
            display_color=hd.color.CIELabColor.from_rgb(*info.colour),
        )
        for info in segments
    ]
    if series_number is None:
        series_number = 1000 + int(sources[0].get("SeriesNumber", 0) or 0)
    return sources, descriptions, series_number


def _segmentation(
    sources: list[pydicom.Dataset],
    pixels: np.ndarray,
    descriptions: list[hd.seg.SegmentDescription],
    series_number: int,
    bundle: str,
    series_description: str,
    omit_empty_frames: bool,
    **kind: Any,
) -> hd.seg.Segmentation:
    """highdicom's Segmentation of these parts, of the `kind` given (type, encoding), person-name warnings quiet."""
    return quiet_person_name_warnings(
        lambda: hd.seg.Segmentation(
            source_images=sources,
            pixel_array=pixels,
            segment_descriptions=descriptions,
            series_instance_uid=hd.UID(),
            series_number=series_number,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            content_label="LIVERVAE",
            content_description="Liver and liver tumour, automatic (LiverVAE)",
            series_description=series_description,
            omit_empty_frames=omit_empty_frames,
            **kind,
            **device_identity(bundle),
        )
    )


def write_dicom_seg(
    label: Volume,
    ct: DicomSeries,
    path: str | os.PathLike[str],
    bundle: str = TUMOR_BUNDLE,
    bundle_version: str = "",
    series_number: int | None = None,
) -> Path:
    """Write `label` as a DICOM Segmentation of `ct` to `path` atomically and return the path.

    See `build_dicom_seg` for the arguments and what the SEG holds.
    """
    seg = build_dicom_seg(label, ct, bundle=bundle, bundle_version=bundle_version, series_number=series_number)
    return save_dicom(seg, path)
