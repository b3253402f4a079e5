"""Read a DICOM Segmentation (via highdicom) onto the grid of the CT series it annotates.

Segments are given roles (liver, tumor, vessel, ignore) from their coded segmented property type or their
label, with a default map covering common SNOMED CT / SRT codes and the label names used by TCIA collections
such as HCC-TACE-Seg; users extend or override it. Frames are placed on the CT by ImagePositionPatient, so
SEGs that omit per-frame source references still read correctly.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
from scipy import ndimage

from livervae.errors import InputError
from livervae.io.dicom_series import DicomSeries, slice_index_for_position
from livervae.io.volume import Volume
from livervae.labels import LIVER, TUMOR

logger = logging.getLogger(__name__)

ROLES = ("liver", "tumor", "vessel", "ignore")
VESSEL_MODES = ("background", "liver")

# Keys are "SCHEME:VALUE" codes or lower-case segment labels.
DEFAULT_SEGMENT_MAP: dict[str, str] = {
    # liver
    "SCT:10200004": "liver",
    "SRT:T-62000": "liver",
    "liver": "liver",
    # tumour
    "SCT:108369006": "tumor",  # Neoplasm
    "SCT:4147007": "tumor",  # Mass
    "SCT:86049000": "tumor",  # Malignant neoplasm, primary
    "SCT:93870000": "tumor",  # Malignant neoplasm of liver
    "SCT:25370001": "tumor",  # Hepatocellular carcinoma
    "SCT:52988006": "tumor",  # Lesion
    "SRT:M-03000": "tumor",  # Mass
    "SRT:M-80003": "tumor",  # Neoplasm, malignant
    "SRT:M-01000": "tumor",  # Lesion
    "tumor": "tumor",
    "tumour": "tumor",
    "mass": "tumor",
    "lesion": "tumor",
    "neoplasm": "tumor",
    "hcc": "tumor",
    "liver tumor": "tumor",
    "liver tumour": "tumor",
    # vessels
    "SCT:32764006": "vessel",  # Portal vein
    "SRT:T-48810": "vessel",
    "SCT:15825003": "vessel",  # Aorta
    "SRT:T-42000": "vessel",
    "SCT:8887007": "vessel",  # Hepatic vein
    "SCT:64131007": "vessel",  # Inferior vena cava
    "portal vein": "vessel",
    "aorta": "vessel",
    "abdominal aorta": "vessel",
    "hepatic vein": "vessel",
    "inferior vena cava": "vessel",
    "ivc": "vessel",
}


@dataclass(frozen=True)
class SegmentRole:
    """A segment of the SEG and the role LiverVAE gives it."""

    number: int
    label: str
    code: str
    role: str | None


def parse_segment_map(spec: str | os.PathLike[str] | None) -> dict[str, str]:
    """Parse a user segment map: a JSON file, or inline `key=role` pairs separated by commas.

    Keys are segment labels (case-insensitive) or codes `SCHEME:VALUE`; roles are liver, tumor, vessel, ignore.
    The result is merged over `DEFAULT_SEGMENT_MAP`.
    """
    merged = dict(DEFAULT_SEGMENT_MAP)
    if spec is None or str(spec).strip() == "":
        return merged
    text = str(spec)
    if Path(text).is_file():
        try:
            entries = json.loads(Path(text).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(text, f"cannot read segment map ({exc})") from exc
        if not isinstance(entries, dict):
            raise InputError(text, "segment map must be a JSON object of key to role")
    else:
        entries = {}
        for pair in text.split(","):
            if "=" not in pair:
                raise InputError(None, f"segment map entry {pair.strip()!r} is not of the form key=role")
            key, role = pair.split("=", 1)
            entries[key.strip()] = role.strip()
    for key, role in entries.items():
        role = str(role).lower()
        if role == "tumour":
            role = "tumor"
        if role not in ROLES:
            raise InputError(None, f"segment map role {role!r} for {key!r} is not one of {', '.join(ROLES)}")
        merged[key if ":" in key else key.strip().lower()] = role
    return merged


def segment_roles(seg: hd.seg.Segmentation, segment_map: dict[str, str]) -> list[SegmentRole]:
    """Give each segment of `seg` its role: by code first, then by label; None when nothing matches."""
    roles = []
    for number in seg.segment_numbers:
        description = seg.get_segment_description(number)
        code_item = description.segmented_property_type
        code = f"{code_item.scheme_designator}:{code_item.value}"
        label = str(description.segment_label)
        role = segment_map.get(code) or segment_map.get(label.strip().lower())
        roles.append(SegmentRole(int(number), label, code, role))
    return roles


def _frame_geometry(seg: hd.seg.Segmentation, index: int) -> tuple[int, np.ndarray, np.ndarray | None]:
    """Segment number, ImagePositionPatient and (if per-frame) orientation of frame `index` (0-based)."""
    per_frame = seg.PerFrameFunctionalGroupsSequence[index]
    shared = seg.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in seg else None

    def lookup(keyword: str):
        for group in (per_frame, shared):
            if group is not None and keyword in group:
                return group[keyword].value[0]
        return None

    identification = lookup("SegmentIdentificationSequence")
    position = lookup("PlanePositionSequence")
    if identification is None or position is None:
        raise InputError(seg.filename, f"frame {index + 1} lacks its segment number or plane position")
    orientation = lookup("PlaneOrientationSequence")
    return (
        int(identification.ReferencedSegmentNumber),
        np.asarray(position.ImagePositionPatient, dtype=float),
        None if orientation is None else np.asarray(orientation.ImageOrientationPatient, dtype=float),
    )


def _pixel_spacing(seg: hd.seg.Segmentation) -> np.ndarray | None:
    shared = seg.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in seg else None
    if shared is not None and "PixelMeasuresSequence" in shared:
        return np.asarray(shared.PixelMeasuresSequence[0].PixelSpacing, dtype=float)
    return None


def _enclosed_by_liver(vessel: np.ndarray, liver: np.ndarray) -> np.ndarray:
    """Vessel voxels that the liver outline encloses on their axial slice (intrahepatic vessels)."""
    enclosed = np.zeros_like(vessel)
    for k in np.flatnonzero(vessel.any(axis=(0, 1))):
        enclosed[:, :, k] = vessel[:, :, k] & ndimage.binary_fill_holes(liver[:, :, k])
    return enclosed


def read_dicom_seg_labels(
    seg_path: str | os.PathLike[str],
    ct: DicomSeries,
    segment_map: dict[str, str] | None = None,
    vessels: str = "background",
) -> Volume:
    """Build a 0/1/2 label map on the CT grid from a DICOM-SEG that annotates `ct`.

    Args:
        seg_path: the Segmentation file.
        ct: the CT series the SEG annotates (frames are matched to its slices by position).
        segment_map: key → role map (see `parse_segment_map`); defaults to `DEFAULT_SEGMENT_MAP`.
        vessels: "background" ignores vessel segments; "liver" labels vessel voxels enclosed by the liver
            outline on their slice as liver (LiTS convention for intrahepatic vessels).

    Raises:
        InputError: unreadable SEG, a frame of reference or frame geometry that does not match the CT, or no
            liver segment.
    """
    seg_path = Path(seg_path)
    if vessels not in VESSEL_MODES:
        raise InputError(None, f"vessels must be one of {', '.join(VESSEL_MODES)}, got {vessels!r}")
    if not seg_path.is_file():
        raise InputError(seg_path, "DICOM-SEG file not found")
    try:
        seg = hd.seg.segread(seg_path)
    except Exception as exc:
        raise InputError(seg_path, f"cannot read as a DICOM Segmentation ({type(exc).__name__}: {exc})") from exc
    seg_frame_of_reference = str(seg.get("FrameOfReferenceUID", ""))
    if seg_frame_of_reference and ct.frame_of_reference_uid and seg_frame_of_reference != ct.frame_of_reference_uid:
        raise InputError(seg_path, "frame of reference differs from the CT series; the SEG annotates another scan")
    roles = {s.number: s for s in segment_roles(seg, segment_map or DEFAULT_SEGMENT_MAP)}
    for segment in roles.values():
        if segment.role is None:
            logger.warning(
                "%s: segment %d '%s' (%s) has no role in the segment map; ignored",
                seg_path.name,
                segment.number,
                segment.label,
                segment.code,
            )
    if not any(s.role == "liver" for s in roles.values()):
        found = ", ".join(f"{s.number} '{s.label}' ({s.code})" for s in roles.values())
        raise InputError(seg_path, f"no liver segment (segments: {found}); map one with --segment-map")

    nx, ny, nz = ct.volume.shape
    if (int(seg.Rows), int(seg.Columns)) != (ny, nx):
        raise InputError(seg_path, f"frame size {seg.Rows}x{seg.Columns} differs from the CT's {ny}x{nx}")
    spacing = _pixel_spacing(seg)
    ct_spacing = np.asarray(ct.volume.spacing[:2])
    if spacing is not None and not np.allclose(spacing[::-1], ct_spacing, atol=1e-3):
        raise InputError(seg_path, f"pixel spacing {spacing.tolist()} differs from the CT's {ct_spacing.tolist()}")

    masks = {role: np.zeros((nx, ny, nz), dtype=bool) for role in ("liver", "tumor", "vessel")}
    seg_type = seg.segmentation_type
    threshold = 0.5 * float(seg.get("MaximumFractionalValue", 1) or 1)
    for index in range(int(seg.get("NumberOfFrames", 1))):
        number, position, orientation = _frame_geometry(seg, index)
        if orientation is not None and not np.allclose(orientation, ct.orientation, atol=1e-4):
            raise InputError(seg_path, f"frame {index + 1} orientation differs from the CT's")
        frame = seg.get_stored_frame(index + 1)
        if seg_type == hd.seg.SegmentationTypeValues.LABELMAP:
            present = [int(v) for v in np.unique(frame) if v != 0]
        else:
            present = [number]
        k = slice_index_for_position(ct, position, seg_path)
        for value in present:
            segment = roles.get(value)
            if segment is None or segment.role in (None, "ignore"):
                continue
            if seg_type == hd.seg.SegmentationTypeValues.LABELMAP:
                pixels = frame == value
            elif seg_type == hd.seg.SegmentationTypeValues.FRACTIONAL:
                pixels = frame >= threshold
            else:
                pixels = frame > 0
            masks[segment.role][:, :, k] |= pixels.T

    label = np.zeros((nx, ny, nz), dtype=np.uint8)
    label[masks["liver"]] = LIVER
    if vessels == "liver":
        label[_enclosed_by_liver(masks["vessel"], masks["liver"] | masks["tumor"])] = LIVER
    label[masks["tumor"]] = TUMOR
    return Volume(array=label, affine=ct.volume.affine.copy(), source=str(seg_path))
