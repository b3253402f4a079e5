"""Read one DICOM CT series into a `Volume`, refusing series whose geometry would silently corrupt it.

Headers are scanned with pydicom (fast, no pixel data) to group files by series and check the geometry;
pixels are read with SimpleITK's series reader, which applies the rescale to Hounsfield units. Patient-level
attributes (name, ID, birth date) are never read into messages or logs.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.errors import InvalidDicomError

from livervae.errors import InputError
from livervae.io.volume import Volume, as_compact_ct, require_size_within_limit

logger = logging.getLogger(__name__)

# Geometry tolerances. Positions in DICOM are written with limited decimals, so compare with some slack.
_ORIENTATION_ATOL = 1e-4
_POSITION_ATOL_MM = 1e-3
_TILT_TOLERANCE_DEG = 0.5
_SPACING_RTOL = 0.01
_SPACING_ATOL_MM = 0.01

# A file with a DICOM preamble or a .dcm suffix that fails to parse is an error; other files are not DICOM.
_DICOM_SUFFIXES = {".dcm", ".dicom", ".ima"}


@dataclass(frozen=True)
class SliceHeader:
    """What LiverVAE needs from one single-frame image header."""

    path: Path
    series_uid: str
    sop_instance_uid: str
    modality: str
    rows: int
    columns: int
    pixel_spacing: tuple[float, float]
    orientation: tuple[float, ...]
    position: tuple[float, float, float]
    series_description: str
    study_uid: str
    frame_of_reference_uid: str
    image_type: tuple[str, ...] = ()

    @property
    def is_localizer(self) -> bool:
        """A scout / topogram (ImageType LOCALIZER): a planning image, not a volume to segment."""
        return "LOCALIZER" in self.image_type


@dataclass
class DicomSeries:
    """A CT series read into a `Volume`, with the per-slice identity needed to relate other objects to it.

    Attributes:
        volume: the voxels in Hounsfield units, NIfTI index order, RAS affine.
        files: the slice files sorted along the slice normal (same order as the volume's third axis).
        sop_instance_uids: the SOP Instance UID of each sorted slice.
        positions: ImagePositionPatient (LPS, mm) of each sorted slice, shape (n, 3).
        orientation: ImageOrientationPatient (row direction then column direction).
    """

    volume: Volume
    files: list[Path]
    sop_instance_uids: list[str]
    positions: np.ndarray
    orientation: np.ndarray
    series_uid: str
    study_uid: str
    frame_of_reference_uid: str
    modality: str
    series_description: str


def _has_preamble(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def read_header(path: Path) -> pydicom.Dataset | None:
    """Read a DICOM header without pixel data; None for files that are not DICOM at all.

    Raises:
        InputError: a file that claims to be DICOM (preamble or suffix) but cannot be parsed.
    """
    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        if _has_preamble(path) or path.suffix.lower() in _DICOM_SUFFIXES:
            raise InputError(path, "cannot read DICOM header (file is truncated or corrupt)") from None
        try:
            dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception:
            return None
        return dataset if "SOPClassUID" in dataset else None
    except OSError as exc:
        raise InputError(path, f"cannot open file ({exc.strerror or exc})") from exc
    except Exception as exc:
        raise InputError(path, f"cannot read DICOM header ({type(exc).__name__}: {exc})") from exc
    # pydicom returns whatever it parsed before the end of a truncated file, without a warning.
    if "SOPClassUID" not in dataset or "SOPInstanceUID" not in dataset:
        raise InputError(path, "cannot read DICOM header (file is truncated or corrupt)")
    return dataset


def slice_header(path: Path, dataset: pydicom.Dataset) -> SliceHeader | None:
    """Return the header of a single-frame image, or None for non-image objects (SR, KO, PR, SEG...)."""
    if int(dataset.get("NumberOfFrames", 1) or 1) > 1:
        return None
    required = ("Rows", "Columns", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")
    missing = [keyword for keyword in required if keyword not in dataset]
    if missing:
        sop_class_name = getattr(dataset.SOPClassUID, "name", "")
        if sop_class_name.endswith("Image Storage"):
            raise InputError(path, f"image lacks {', '.join(missing)} (file is truncated or incomplete)")
        return None
    try:
        return SliceHeader(
            path=path,
            series_uid=str(dataset.get("SeriesInstanceUID", "")),
            sop_instance_uid=str(dataset.get("SOPInstanceUID", "")),
            modality=str(dataset.get("Modality", "")),
            rows=int(dataset.Rows),
            columns=int(dataset.Columns),
            pixel_spacing=tuple(float(v) for v in dataset.PixelSpacing),  # type: ignore[arg-type]
            orientation=tuple(float(v) for v in dataset.ImageOrientationPatient),
            position=tuple(float(v) for v in dataset.ImagePositionPatient),  # type: ignore[arg-type]
            series_description=str(dataset.get("SeriesDescription", "")),
            study_uid=str(dataset.get("StudyInstanceUID", "")),
            frame_of_reference_uid=str(dataset.get("FrameOfReferenceUID", "")),
            image_type=tuple(str(v).upper() for v in _as_list(dataset.get("ImageType", []))),
        )
    except (TypeError, ValueError) as exc:
        raise InputError(path, f"malformed image geometry attributes ({exc})") from exc


def _as_list(value: object) -> list:
    """A DICOM multi-valued element as a list (a single value is stored bare)."""
    if isinstance(value, (str, bytes)):
        return [value]
    try:
        return list(value)  # type: ignore[call-overload]
    except TypeError:
        return [value]


def list_files(folder: Path) -> list[Path]:
    """List regular, non-hidden files below `folder` (recursively), sorted by path."""
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files.extend(Path(root) / name for name in names if not name.startswith(".") and name.upper() != "DICOMDIR")
    return sorted(files)


SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


@dataclass
class DicomFolderScan:
    """The DICOM content of a folder: image slices grouped by series, and the Segmentation objects."""

    folder: Path
    series: dict[str, list[SliceHeader]]
    segmentations: list[tuple[Path, pydicom.Dataset]]
    skipped: list[tuple[Path, str]]


def scan_dicom_folder(folder: str | os.PathLike[str]) -> DicomFolderScan:
    """Read every header below `folder` once; group single-frame images by series and collect SEG objects.

    Non-DICOM files are ignored; other non-image objects (structured reports, key objects, presentation
    states) are skipped with a log line naming their SOP class.

    Raises:
        InputError: the folder is missing or holds a corrupt DICOM file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "DICOM folder not found")
    return scan_dicom_files(folder, list_files(folder))


def scan_dicom_files(folder: str | os.PathLike[str], files: list[Path]) -> DicomFolderScan:
    """`scan_dicom_folder` over a given list of files (e.g. one series' files found by a tree walk).

    Raises:
        InputError: a listed file is missing or corrupt.
    """
    series: dict[str, list[SliceHeader]] = defaultdict(list)
    segmentations: list[tuple[Path, pydicom.Dataset]] = []
    skipped: list[tuple[Path, str]] = []
    for path in files:
        dataset = read_header(path)
        if dataset is None:
            continue
        if str(dataset.get("SOPClassUID", "")) == SEGMENTATION_STORAGE:
            segmentations.append((path, dataset))
            continue
        header = slice_header(path, dataset)
        if header is None:
            sop_class = getattr(dataset.SOPClassUID, "name", str(dataset.SOPClassUID))
            if int(dataset.get("NumberOfFrames", 1) or 1) > 1:
                sop_class = f"multi-frame {sop_class}"
            logger.info("skipping %s: %s, not a single-frame image slice", path.name, sop_class)
            skipped.append((path, sop_class))
            continue
        series[header.series_uid].append(header)
    return DicomFolderScan(folder=Path(folder), series=dict(series), segmentations=segmentations, skipped=skipped)


def _describe_series(uid: str, headers: list[SliceHeader]) -> str:
    description = headers[0].series_description.strip()
    text = f"{uid} ({headers[0].modality or 'no modality'}, {len(headers)} images"
    return text + (f", '{description}')" if description else ")")


def select_series(scan: DicomFolderScan, series_uid: str | None = None) -> tuple[str, list[SliceHeader]]:
    """Pick the series to read: the one named by `series_uid`, or the only one present."""
    folder, series = scan.folder, scan.series
    if not series:
        multi_frame = [name for _, name in scan.skipped if name.startswith("multi-frame")]
        if multi_frame:
            raise InputError(
                folder,
                f"holds only multi-frame objects ({multi_frame[0]}), which are not supported; "
                "export the series as single-frame slices",
            )
        raise InputError(folder, "no DICOM image slices found")
    if series_uid is not None:
        if series_uid not in series:
            available = "; ".join(_describe_series(uid, h) for uid, h in sorted(series.items()))
            raise InputError(folder, f"no series with SeriesInstanceUID {series_uid} (available: {available})")
        return series_uid, series[series_uid]
    if len(series) > 1:
        listing = "; ".join(_describe_series(uid, h) for uid, h in sorted(series.items()))
        raise InputError(folder, f"holds {len(series)} image series, choose one with --series-uid: {listing}")
    return next(iter(series.items()))


def sort_and_check_geometry(folder: Path, headers: list[SliceHeader]) -> list[SliceHeader]:
    """Sort slices along their normal and refuse geometry a volume cannot represent faithfully.

    Refuses: fewer than 2 slices, mixed orientation/size/pixel spacing, duplicate positions, gantry tilt
    (slice positions not along the slice normal), missing slices, and non-uniform slice spacing.
    """
    if len(headers) < 2:
        raise InputError(folder, f"expected a 3D volume, but the series has {len(headers)} slice (a 2D image)")
    first = headers[0]
    for header in headers[1:]:
        if not np.allclose(header.orientation, first.orientation, atol=_ORIENTATION_ATOL):
            raise InputError(header.path, "slice orientation differs from the rest of the series")
        if (header.rows, header.columns) != (first.rows, first.columns):
            raise InputError(header.path, "slice size differs from the rest of the series")
        if not np.allclose(header.pixel_spacing, first.pixel_spacing, atol=1e-4):
            raise InputError(header.path, "pixel spacing differs from the rest of the series")
    row_dir = np.asarray(first.orientation[:3])
    col_dir = np.asarray(first.orientation[3:])
    normal = np.cross(row_dir, col_dir)
    if not np.isclose(np.linalg.norm(normal), 1.0, atol=1e-3):
        raise InputError(first.path, "ImageOrientationPatient is not two orthogonal unit vectors")
    positions = np.asarray([h.position for h in headers])
    distances = positions @ normal
    order = np.argsort(distances, kind="stable")
    headers = [headers[i] for i in order]
    positions, distances = positions[order], distances[order]

    steps = np.diff(distances)
    duplicate = np.flatnonzero(steps < _POSITION_ATOL_MM)
    if duplicate.size:
        i = int(duplicate[0])
        raise InputError(
            folder,
            f"two slices share one position ({headers[i].path.name} and {headers[i + 1].path.name}); "
            "the folder may mix acquisitions",
        )
    # Gantry tilt shows as slice origins drifting in-plane from one slice to the next.
    travel = positions[-1] - positions[0]
    cos_angle = abs(float(travel @ normal)) / float(np.linalg.norm(travel))
    tilt_deg = float(np.degrees(np.arccos(min(cos_angle, 1.0))))
    if tilt_deg > _TILT_TOLERANCE_DEG:
        raise InputError(folder, f"gantry tilt of {tilt_deg:.1f} degrees (slices are sheared); resample it first")

    median = float(np.median(steps))
    tolerance = max(_SPACING_RTOL * median, _SPACING_ATOL_MM)
    off = np.flatnonzero(np.abs(steps - median) > tolerance)
    if off.size:
        ratios = steps[off] / median
        if np.all(np.abs(ratios - np.rint(ratios)) * median <= tolerance) and np.all(np.rint(ratios) >= 2):
            i = int(off[0])
            missing = int(sum(np.rint(ratios) - 1))
            raise InputError(
                folder,
                f"{missing} missing slice(s): gap of {steps[i]:.3g} mm after {headers[i].path.name} "
                f"where slices are {median:.3g} mm apart",
            )
        raise InputError(
            folder, f"non-uniform slice spacing: steps range from {steps.min():.3g} to {steps.max():.3g} mm"
        )
    return headers


def _find_unreadable_slice(files: list[Path]) -> tuple[Path, str] | None:
    for path in files:
        try:
            pydicom.dcmread(path).pixel_array
        except Exception as exc:  # pydicom raises many types for truncated or undecodable pixel data
            return path, f"{type(exc).__name__}: {exc}"
    return None


def sitk_to_volume(image: sitk.Image, source: str) -> Volume:
    """Convert a SimpleITK image (LPS world) to a `Volume` (NIfTI index order, RAS affine)."""
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    origin = np.asarray(image.GetOrigin(), dtype=np.float64)
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    affine = np.eye(4)
    affine[:3, :3] = lps_to_ras @ direction @ np.diag(spacing)
    affine[:3, 3] = lps_to_ras @ origin
    return Volume(array=np.ascontiguousarray(array), affine=affine, source=source)


def read_dicom_series(
    folder: str | os.PathLike[str],
    series_uid: str | None = None,
    modality: str | None = "CT",
    scan: DicomFolderScan | None = None,
) -> DicomSeries:
    """Read one DICOM image series from `folder` into Hounsfield units with checked geometry.

    Args:
        folder: the series folder (files may sit in subfolders).
        series_uid: which series to read when the folder holds several.
        modality: the required Modality (None accepts any).
        scan: the folder's headers when the caller has already scanned it.

    Raises:
        InputError: missing folder, corrupt file, several series without `series_uid`, wrong modality, or
            geometry that a regular grid cannot represent (see `sort_and_check_geometry`).
    """
    folder = Path(folder)
    scan = scan if scan is not None else scan_dicom_folder(folder)
    uid, headers = select_series(scan, series_uid)
    if modality is not None and headers[0].modality.upper() != modality.upper():
        raise InputError(
            folder, f"series {uid} has Modality {headers[0].modality or 'missing'!r}, expected {modality!r}"
        )
    headers = sort_and_check_geometry(folder, headers)
    require_size_within_limit((headers[0].rows, headers[0].columns, len(headers)), str(folder))
    files = [h.path for h in headers]
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in files])
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        culprit = _find_unreadable_slice(files)
        if culprit is not None:
            raise InputError(culprit[0], f"cannot decode pixel data ({culprit[1]})") from exc
        raise InputError(folder, f"cannot read the series pixel data ({str(exc).strip().splitlines()[-1]})") from exc
    volume = sitk_to_volume(image, str(folder))
    volume.array = as_compact_ct(volume.array)
    return DicomSeries(
        volume=volume,
        files=files,
        sop_instance_uids=[h.sop_instance_uid for h in headers],
        positions=np.asarray([h.position for h in headers]),
        orientation=np.asarray(headers[0].orientation),
        series_uid=uid,
        study_uid=headers[0].study_uid,
        frame_of_reference_uid=headers[0].frame_of_reference_uid,
        modality=headers[0].modality,
        series_description=headers[0].series_description,
    )


def slice_index_for_position(series: DicomSeries, position: np.ndarray, source: str | Path) -> int:
    """Return the index of the series slice at `position` (LPS mm), refusing positions off the series grid."""
    normal = np.cross(series.orientation[:3], series.orientation[3:])
    distances = series.positions @ normal
    target = float(np.asarray(position) @ normal)
    index = int(np.argmin(np.abs(distances - target)))
    spacing = float(np.median(np.diff(distances))) if len(distances) > 1 else 1.0
    if abs(distances[index] - target) > 0.1 * spacing or not np.allclose(
        series.positions[index], position, atol=max(0.1 * spacing, 0.01)
    ):
        raise InputError(source, f"frame at position {np.round(position, 2).tolist()} matches no slice of the CT")
    return index
