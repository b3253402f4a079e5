"""Measure a 0/1/2 label map on its CT: the volumes, diameters and densities a radiologist reports.

`measure_case` turns a label map (0 background, 1 liver, 2 tumour; `livervae.labels`) on the grid of its CT
(`livervae.io.volume.Volume`: NIfTI index order, 4x4 voxel-to-RAS affine in mm) into `CaseMeasurements`;
`write_measurements` stores them as `<name>.json` and `<name>.csv` beside a `<name>.nii.gz` / `.nii` / `.dcm`
output, and `format_measurement_table` prints the short summary the CLI shows. The files hold no patient names
or IDs, only the `source` string the caller gives.

Definitions:

- Liver volume counts every voxel with label >= 1 (the liver including its tumours), as
  `livervae.data.summary.summarise_case` does; tumour volume counts label == 2. Volumes are voxel counts times
  the voxel volume |det(affine[:3, :3])|, in mL. Tumour burden is 100 * tumour mL / liver mL, NaN without liver.
- Lesions are the 26-connected components of label == 2 (`livervae.labels.LESION_CONNECTIVITY`), numbered from 1
  in order of decreasing volume (equal volumes keep the order of their first voxel in C scan order).
- The axial slice axis is the array axis whose affine column is most aligned with the superior-inferior world
  axis (largest |cosine| with RAS z; ties go to the later axis, so a DICOM series read by
  `livervae.io.dicom_series` — slices stacked along the third axis in sorted order — always gets axis 2 when its
  slices are axial). `long_axis_slice` is an index along that axis.
- Long axis: on each slice through the lesion, the Feret (maximum caliper) diameter of the lesion's cross-section,
  measured between pixel centres in world mm using the two in-plane affine columns (so anisotropic, oblique and
  sheared grids are measured correctly). Only the convex hull of the pixel centres matters; its vertices are
  among the first and last pixel of each row, so only those are passed to `scipy.spatial.ConvexHull` (collinear
  and 1-pixel cross-sections are handled without it). The lesion's long axis is the largest over its slices;
  on a tie (within 1e-6 mm) the first slice wins. Its endpoints are the two pixel centres, given in RAS mm.
- Short axis: on that same slice, the extent of the cross-section's pixel centres along the in-plane direction
  perpendicular to the long axis; for a convex lesion this is the longest chord perpendicular to the long axis.
- Diameters are centre-to-centre: no pixel size is added. A lesion one pixel wide on every slice therefore
  measures 0 mm, and a drawn lesion measures up to one pixel (about 0.7 mm on CT) less than its drawn outline.
  This keeps `long_axis_mm` exactly the distance between `long_axis_endpoints_ras_mm`, which the DICOM SR
  writer draws as the long-axis polyline.
- Mean and SD (population, ddof=0) of `image.array` over the lesion voxels, in the image's units (HU for CT).
- Centroid: the mean voxel index of the lesion mapped through the affine (RAS mm); LPS (DICOM patient
  coordinates) is (-x, -y, z) of it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from livervae import __version__
from livervae.errors import InputError
from livervae.io.atomic import atomic_path
from livervae.io.volume import Volume
from livervae.labels import LESION_CONNECTIVITY, LIVER, TUMOR

OUTPUT_SUFFIXES = (".nii.gz", ".nii", ".dcm")
# Slices whose diameters differ by less than this (mm) count as a tie; the first of them holds the long axis.
TIE_TOLERANCE_MM = 1e-6
# A cross-section with at most this many row-extreme points is measured by brute force, not through qhull.
BRUTE_FORCE_POINTS = 24
TABLE_MAX_LESIONS = 10

UNITS = {
    "volume": "mL",
    "length": "mm",
    "density": "HU (mean and population SD of the image values)",
    "coordinates": "mm; RAS is the NIfTI world frame, LPS is DICOM patient coordinates",
    "diameters": "between pixel centres, no pixel size added",
    "long_axis_slice": "0-based index along slice_axis of the array",
}

CSV_COLUMNS = (
    "number",
    "voxels",
    "volume_ml",
    "long_axis_mm",
    "short_axis_mm",
    "long_axis_slice",
    "mean_hu",
    "sd_hu",
    "centroid_lps_x_mm",
    "centroid_lps_y_mm",
    "centroid_lps_z_mm",
    "centroid_ras_x_mm",
    "centroid_ras_y_mm",
    "centroid_ras_z_mm",
    "long_axis_start_ras_x_mm",
    "long_axis_start_ras_y_mm",
    "long_axis_start_ras_z_mm",
    "long_axis_end_ras_x_mm",
    "long_axis_end_ras_y_mm",
    "long_axis_end_ras_z_mm",
)

Point3 = tuple[float, float, float]


def _round(value: float, digits: int) -> float | None:
    """`value` rounded to `digits`, or None when it is NaN or infinite (JSON has no NaN)."""
    if not math.isfinite(value):
        return None
    return round(float(value), digits)


def _round_point(point: Point3, digits: int = 2) -> list[float | None]:
    return [_round(c, digits) for c in point]


@dataclass(frozen=True)
class LesionMeasurement:
    """One lesion's measurements (see the module docstring for the definitions).

    Attributes:
        number: 1-based, lesions ordered largest volume first.
        voxels: its voxel count.
        volume_ml: its volume in mL.
        long_axis_mm: the longest axial in-plane diameter over all of the lesion's slices.
        short_axis_mm: the extent perpendicular to the long axis, on the same slice.
        long_axis_slice: index along the slice axis of the slice holding the long axis.
        long_axis_endpoints_ras_mm: the two pixel centres the long axis joins, RAS mm.
        mean_hu: mean image value over the lesion.
        sd_hu: population SD (ddof=0) of the image values over the lesion.
        centroid_lps_mm: patient coordinates (DICOM LPS) of the voxel centroid.
        centroid_ras_mm: RAS coordinates of the voxel centroid.
    """

    number: int
    voxels: int
    volume_ml: float
    long_axis_mm: float
    short_axis_mm: float
    long_axis_slice: int
    long_axis_endpoints_ras_mm: tuple[Point3, Point3]
    mean_hu: float
    sd_hu: float
    centroid_lps_mm: Point3
    centroid_ras_mm: Point3

    def to_dict(self) -> dict[str, Any]:
        """The lesion as JSON-safe values, rounded (mL to 3 decimals, mm to 2, HU to 1)."""
        return {
            "number": self.number,
            "voxels": self.voxels,
            "volume_ml": _round(self.volume_ml, 3),
            "long_axis_mm": _round(self.long_axis_mm, 2),
            "short_axis_mm": _round(self.short_axis_mm, 2),
            "long_axis_slice": self.long_axis_slice,
            "long_axis_endpoints_ras_mm": [_round_point(p) for p in self.long_axis_endpoints_ras_mm],
            "mean_hu": _round(self.mean_hu, 1),
            "sd_hu": _round(self.sd_hu, 1),
            "centroid_lps_mm": _round_point(self.centroid_lps_mm),
            "centroid_ras_mm": _round_point(self.centroid_ras_mm),
        }

    def csv_row(self) -> dict[str, Any]:
        """The lesion as one CSV row keyed by `CSV_COLUMNS`, rounded as in `to_dict`."""
        values = self.to_dict()
        row = {key: values[key] for key in CSV_COLUMNS[:8]}
        start, end = values["long_axis_endpoints_ras_mm"]
        for prefix, point in (
            ("centroid_lps", values["centroid_lps_mm"]),
            ("centroid_ras", values["centroid_ras_mm"]),
            ("long_axis_start_ras", start),
            ("long_axis_end_ras", end),
        ):
            for axis, coordinate in zip("xyz", point):
                row[f"{prefix}_{axis}_mm"] = coordinate
        return row


@dataclass(frozen=True)
class CaseMeasurements:
    """The measurements of one case (see the module docstring for the definitions).

    Attributes:
        liver_ml: liver including its tumours (label >= 1), as `livervae.data.summary` does.
        tumor_ml: tumour (label == 2).
        tumor_burden_percent: 100 * tumor_ml / liver_ml; NaN when there is no liver.
        lesion_count: the number of 26-connected tumour components.
        slice_axis: the array axis taken as the axial slice axis.
        lesions: one entry per lesion, largest volume first.
        liver_voxels: voxel count of label >= 1.
        tumor_voxels: voxel count of label == 2.
        voxel_volume_ml: the volume of one voxel.
        spacing_mm: voxel size along each array axis.
    """

    liver_ml: float
    tumor_ml: float
    tumor_burden_percent: float
    lesion_count: int
    slice_axis: int
    lesions: tuple[LesionMeasurement, ...]
    liver_voxels: int = 0
    tumor_voxels: int = 0
    voxel_volume_ml: float = float("nan")
    spacing_mm: Point3 = (float("nan"), float("nan"), float("nan"))

    def to_dict(self) -> dict[str, Any]:
        """The case as JSON-safe values (NaN becomes None), rounded: mL to 2 decimals (lesions 3), mm to 2."""
        return {
            "liver_ml": _round(self.liver_ml, 2),
            "tumor_ml": _round(self.tumor_ml, 2),
            "tumor_burden_percent": _round(self.tumor_burden_percent, 3),
            "lesion_count": self.lesion_count,
            "liver_voxels": self.liver_voxels,
            "tumor_voxels": self.tumor_voxels,
            "voxel_volume_ml": _round(self.voxel_volume_ml, 8),
            "spacing_mm": _round_point(self.spacing_mm, 4),
            "slice_axis": self.slice_axis,
            "units": dict(UNITS),
            "lesions": [lesion.to_dict() for lesion in self.lesions],
        }


def axial_slice_axis(affine: np.ndarray) -> int:
    """The array axis whose direction (affine column) is most aligned with the superior-inferior world axis.

    Ties go to the later axis, so a stack of axial slices along the third axis always gets axis 2.
    """
    columns = np.asarray(affine, dtype=np.float64)[:3, :3]
    cosines = np.abs(columns[2]) / np.linalg.norm(columns, axis=0)
    best = 2
    for axis in (1, 0):
        if cosines[axis] > cosines[best] + 1e-9:
            best = axis
    return best


def _plane_basis(col_a: np.ndarray, col_b: np.ndarray) -> np.ndarray:
    """A 2x3 orthonormal basis of the plane spanned by two affine columns (its rows are unit vectors)."""
    e1 = col_a / np.linalg.norm(col_a)
    e2 = col_b - (col_b @ e1) * e1
    e2 = e2 / np.linalg.norm(e2)
    return np.stack([e1, e2])


def _row_extremes(mask: np.ndarray) -> np.ndarray:
    """(n, 2) indices of the first and last set pixel of each row of a 2D mask: every convex hull vertex."""
    rows = np.flatnonzero(mask.any(axis=1))
    sub = mask[rows]
    first = np.argmax(sub, axis=1)
    last = sub.shape[1] - 1 - np.argmax(sub[:, ::-1], axis=1)
    single = first == last
    points = np.concatenate(
        [np.stack([rows, first], axis=1), np.stack([rows[~single], last[~single]], axis=1)],
        axis=0,
    )
    return points


def _feret(points_mm: np.ndarray) -> tuple[float, int, int]:
    """The largest pairwise distance among 2D points and the indices of a pair achieving it (first found)."""
    candidates = np.arange(len(points_mm))
    if len(points_mm) > BRUTE_FORCE_POINTS:
        try:
            candidates = ConvexHull(points_mm).vertices
        except QhullError:  # collinear (or otherwise flat): all the points are candidates
            pass
    hull = points_mm[candidates]
    diff = hull[:, None, :] - hull[None, :, :]
    dist2 = np.einsum("ijk,ijk->ij", diff, diff)
    flat = int(np.argmax(dist2))
    i, j = divmod(flat, len(hull))
    return math.sqrt(float(dist2[i, j])), int(candidates[i]), int(candidates[j])


def _lesion_axes(
    mask: np.ndarray, offset: np.ndarray, slice_axis: int, affine: np.ndarray
) -> tuple[float, float, int, tuple[Point3, Point3]]:
    """Long axis, short axis, slice index and long-axis endpoints (RAS) of one lesion's bounding-box mask."""
    plane_axes = [axis for axis in range(3) if axis != slice_axis]
    columns = affine[:3, plane_axes]  # 3x2: world step per in-plane index
    to_plane = _plane_basis(columns[:, 0], columns[:, 1]) @ columns  # 2x2: in-plane index -> 2D mm
    stack = np.moveaxis(mask, slice_axis, 0)
    best_long, best_short, best_slice = -1.0, 0.0, 0
    best_pair = (np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.int64))
    for k in range(stack.shape[0]):
        section = stack[k]
        if not section.any():
            continue
        points = _row_extremes(section)
        points_mm = points @ to_plane.T
        long_mm, i, j = _feret(points_mm)
        if long_mm <= best_long + TIE_TOLERANCE_MM:
            continue
        if long_mm > 0:
            direction = (points_mm[j] - points_mm[i]) / long_mm
            normal = np.array([-direction[1], direction[0]])
            # The extent along the normal is reached at hull vertices, so the row extremes suffice.
            projection = points_mm @ normal
            short_mm = float(projection.max() - projection.min())
        else:
            short_mm = 0.0
        best_long, best_short, best_slice = long_mm, short_mm, k
        best_pair = (points[i], points[j])
    endpoints = []
    for point in best_pair:
        index = np.zeros(3, dtype=np.float64)
        index[slice_axis] = best_slice
        index[plane_axes] = point
        index += offset
        world = affine[:3, :3] @ index + affine[:3, 3]
        endpoints.append(tuple(float(c) for c in world))
    return best_long, best_short, int(best_slice + offset[slice_axis]), (endpoints[0], endpoints[1])


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """The smallest box (one slice per axis) holding every set voxel of a non-empty mask."""
    box = []
    for axis in range(mask.ndim):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(int(present[0]), int(present[-1]) + 1))
    return tuple(box)


def measure_case(image: Volume, label: np.ndarray) -> CaseMeasurements:
    """Measure the liver, the tumour and every lesion of a 0/1/2 label map on its CT.

    Args:
        image: the CT the label map was drawn or predicted on (its values give the HU statistics, its affine
            the geometry).
        label: the 0/1/2 label map, same shape as `image.array`.

    Returns:
        The case measurements, lesions ordered largest volume first. An empty liver or a case without tumour is
        valid: zero volumes, no lesions, and a NaN burden without liver.

    Raises:
        InputError: the label map's shape differs from the image's.
    """
    label = np.asarray(label)
    if label.shape != image.array.shape:
        raise InputError(
            image.source or None,
            f"label map of shape {tuple(label.shape)} does not match the image's shape {tuple(image.array.shape)}",
        )
    affine = np.asarray(image.affine, dtype=np.float64)
    voxel_ml = image.voxel_volume_ml
    slice_axis = axial_slice_axis(affine)
    liver_voxels = int(np.count_nonzero(label >= LIVER))
    tumour = label == TUMOR
    tumor_voxels = int(np.count_nonzero(tumour))
    liver_ml = liver_voxels * voxel_ml
    tumor_ml = tumor_voxels * voxel_ml
    burden = 100.0 * tumor_ml / liver_ml if liver_voxels else float("nan")

    lesions: list[LesionMeasurement] = []
    if tumor_voxels:
        # Label only the tumour's bounding box: labelling the whole CT costs far more than measuring.
        crop = _bounding_box(tumour)
        components, _ = ndimage.label(tumour[crop], structure=LESION_CONNECTIVITY)
        boxes = ndimage.find_objects(components)
        measured = []
        for index, local_box in enumerate(boxes, start=1):
            if local_box is None:
                continue
            mask = components[local_box] == index
            box = tuple(slice(c.start + b.start, c.start + b.stop) for c, b in zip(crop, local_box))
            offset = np.array([s.start for s in box], dtype=np.float64)
            voxels = int(np.count_nonzero(mask))
            values = image.array[box][mask].astype(np.float64)
            centroid_index = np.array([c.mean() for c in np.nonzero(mask)]) + offset
            ras = affine[:3, :3] @ centroid_index + affine[:3, 3]
            long_mm, short_mm, slice_index, endpoints = _lesion_axes(mask, offset, slice_axis, affine)
            measured.append(
                dict(
                    voxels=voxels,
                    volume_ml=voxels * voxel_ml,
                    long_axis_mm=long_mm,
                    short_axis_mm=short_mm,
                    long_axis_slice=slice_index,
                    long_axis_endpoints_ras_mm=endpoints,
                    mean_hu=float(values.mean()),
                    sd_hu=float(values.std()),
                    centroid_lps_mm=(-float(ras[0]), -float(ras[1]), float(ras[2])),
                    centroid_ras_mm=(float(ras[0]), float(ras[1]), float(ras[2])),
                )
            )
        measured.sort(key=lambda item: -item["voxels"])  # stable: equal volumes keep their scan order
        lesions = [LesionMeasurement(number=n, **item) for n, item in enumerate(measured, start=1)]

    return CaseMeasurements(
        liver_ml=liver_ml,
        tumor_ml=tumor_ml,
        tumor_burden_percent=burden,
        lesion_count=len(lesions),
        slice_axis=slice_axis,
        lesions=tuple(lesions),
        liver_voxels=liver_voxels,
        tumor_voxels=tumor_voxels,
        voxel_volume_ml=voxel_ml,
        spacing_mm=image.spacing,
    )


def output_stem(output: Path) -> str:
    """`<name>` of an output `<name>.nii.gz`, `<name>.nii` or `<name>.dcm`; any other name whole (the files a
    prediction writes beside its label map are named from it)."""
    name = Path(output).name
    for suffix in OUTPUT_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def measurement_paths(output: Path) -> tuple[Path, Path]:
    """`<name>.json` and `<name>.csv` beside an output `<name>.nii.gz`, `<name>.nii` or `<name>.dcm`.

    Any other name keeps its whole file name as `<name>` (e.g. `case` -> `case.json`, `case.csv`).
    """
    output = Path(output)
    name = output_stem(output)
    return output.with_name(f"{name}.json"), output.with_name(f"{name}.csv")


def measurements_document(
    measurements: CaseMeasurements, source: str = "", quality: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What the JSON file holds: the generator, `source`, then `CaseMeasurements.to_dict()`, and the case's
    `quality` (`livervae.uncertainty.CaseQuality.to_dict()`) when given."""
    document = {"generator": f"livervae {__version__}", "source": source, **measurements.to_dict()}
    if quality is not None:
        document["quality"] = quality
    return document


def measurements_csv(measurements: CaseMeasurements) -> str:
    """What the CSV file holds: a header of `CSV_COLUMNS` and one row per lesion (empty cells for None)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for lesion in measurements.lesions:
        writer.writerow({k: "" if v is None else v for k, v in lesion.csv_row().items()})
    return buffer.getvalue()


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def write_measurements(
    measurements: CaseMeasurements, output: Path, source: str = "", quality: dict[str, Any] | None = None
) -> tuple[Path, Path]:
    """Write the measurements as `<name>.json` and `<name>.csv` beside the output `output`; return both paths.

    Both files are written to temporary names first and only then renamed into place, so a failure leaves
    neither behind (nor a temporary file). `source` names the input in the JSON; pass no patient name or ID.
    `quality` (the case quality report) goes into the JSON when given.

    Raises:
        OutputError: the folder cannot be written.
    """
    json_path, csv_path = measurement_paths(Path(output))
    document = json.dumps(measurements_document(measurements, source, quality), indent=2, allow_nan=False) + "\n"
    table = measurements_csv(measurements)
    csv_existed = csv_path.exists()
    csv_placed = False
    try:
        with atomic_path(json_path) as json_tmp:
            _write_text(json_tmp, document)
            with atomic_path(csv_path) as csv_tmp:
                _write_text(csv_tmp, table)
            csv_placed = True
    except BaseException:
        if csv_placed and not csv_existed:
            csv_path.unlink(missing_ok=True)
        raise
    return json_path, csv_path


def _fmt(value: float, spec: str) -> str:
    return "-" if not math.isfinite(value) else format(value, spec)


def format_measurement_table(measurements: CaseMeasurements) -> str:
    """A short fixed-width table for the CLI: liver, tumour and burden, lesion count, one row per lesion.

    At most `TABLE_MAX_LESIONS` lesion rows are shown, then "... and N more".
    """
    m = measurements
    lines = [
        f"Liver    {m.liver_ml:10.1f} mL",
        f"Tumour   {m.tumor_ml:10.1f} mL ({_fmt(m.tumor_burden_percent, '.1f')} % of liver)",
        f"Lesions  {m.lesion_count:10d}",
    ]
    if m.lesions:
        lines.append(f"  {'#':>3}  {'volume mL':>10}  {'long x short mm':>16}  {'slice':>5}  {'mean ± SD HU':>14}")
        for lesion in m.lesions[:TABLE_MAX_LESIONS]:
            axes = f"{lesion.long_axis_mm:.1f} x {lesion.short_axis_mm:.1f}"
            hu = f"{_fmt(lesion.mean_hu, '.0f')} ± {_fmt(lesion.sd_hu, '.0f')}"
            lines.append(
                f"  {lesion.number:>3}  {lesion.volume_ml:>10.2f}  {axes:>16}  {lesion.long_axis_slice:>5}  {hu:>14}"
            )
        if len(m.lesions) > TABLE_MAX_LESIONS:
            lines.append(f"  ... and {len(m.lesions) - TABLE_MAX_LESIONS} more")
    return "\n".join(lines)
