"""Lesion and case measurements checked against answers computed here by brute force or by hand."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from scipy import ndimage

import livervae.measurements as measurements_module
from livervae.errors import InputError, OutputError
from livervae.io.volume import Volume
from livervae.labels import LESION_CONNECTIVITY
from livervae.measurements import (
    CSV_COLUMNS,
    CaseMeasurements,
    axial_slice_axis,
    format_measurement_table,
    measure_case,
    measurement_paths,
    measurements_document,
    write_measurements,
)

SPACING = (0.7, 0.9, 2.5)
SHAPE = (40, 36, 12)


def rotation_z(degrees: float) -> np.ndarray:
    t = math.radians(degrees)
    return np.array([[math.cos(t), -math.sin(t), 0.0], [math.sin(t), math.cos(t), 0.0], [0.0, 0.0, 1.0]])


def rotation_x(degrees: float) -> np.ndarray:
    t = math.radians(degrees)
    return np.array([[1.0, 0.0, 0.0], [0.0, math.cos(t), -math.sin(t)], [0.0, math.sin(t), math.cos(t)]])


def make_affine(direction: np.ndarray, spacing=SPACING, origin=(10.0, -20.0, 30.0)) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = direction @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


AFFINES = {
    "ras_anisotropic": make_affine(np.eye(3)),
    "lps_dicom_like": make_affine(np.diag([-1.0, -1.0, 1.0]), origin=(120.0, 100.0, -50.0)),
    "oblique": make_affine(rotation_x(12) @ rotation_z(30)),
}


def box_mask(shape=SHAPE) -> np.ndarray:
    """A 9 x 5 x 3 voxel box: every slice has the same cross-section."""
    mask = np.zeros(shape, bool)
    mask[4:13, 5:10, 2:5] = True
    return mask


def ellipsoid_mask(shape=SHAPE) -> np.ndarray:
    """Elliptical discs whose radii peak on slice 7, so one slice holds the long axis."""
    mask = np.zeros(shape, bool)
    i, j = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    for k, scale in zip(range(5, 10), (0.4, 0.75, 1.0, 0.7, 0.35)):
        rx, ry = 8.0 * scale, 5.0 * scale
        mask[:, :, k] = ((i - 25) / rx) ** 2 + ((j - 22) / ry) ** 2 <= 1.0
    return mask


def constructed_case(affine: np.ndarray, masks: list[np.ndarray], seed: int = 3) -> tuple[Volume, np.ndarray]:
    """A CT of random HU with a block liver (1) holding the given lesion masks (2)."""
    rng = np.random.default_rng(seed)
    shape = masks[0].shape
    array = rng.integers(-100, 200, size=shape).astype(np.int16)
    label = np.zeros(shape, np.uint8)
    label[2:-2, 2:-2, 1:-1] = 1
    for mask in masks:
        label[mask] = 2
    return Volume(array=array, affine=affine, source="constructed.nii.gz"), label


def world(affine: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """World (RAS) coordinates of voxel indices, shape (n, 3)."""
    return indices @ affine[:3, :3].T + affine[:3, 3]


def brute_force_axes(affine: np.ndarray, mask: np.ndarray, slice_axis: int) -> tuple[float, int]:
    """Largest in-slice distance between any two voxel centres of `mask`, and the first slice reaching it."""
    best, best_slice = -1.0, -1
    for k in range(mask.shape[slice_axis]):
        section = np.take(mask, k, axis=slice_axis)
        if not section.any():
            continue
        points = np.argwhere(mask & (np.indices(mask.shape)[slice_axis] == k)).astype(float)
        xyz = world(affine, points)
        distance = float(np.max(np.linalg.norm(xyz[:, None] - xyz[None, :], axis=-1)))
        if distance > best + 1e-6:
            best, best_slice = distance, k
    return best, best_slice


def perpendicular_extent(affine: np.ndarray, mask: np.ndarray, slice_axis: int, k: int, start, end) -> float:
    """Extent of the slice's voxel centres along the in-plane direction perpendicular to start -> end."""
    plane = [axis for axis in range(3) if axis != slice_axis]
    normal_of_plane = np.cross(affine[:3, plane[0]], affine[:3, plane[1]])
    direction = np.subtract(end, start)
    perpendicular = np.cross(normal_of_plane, direction)
    perpendicular /= np.linalg.norm(perpendicular)
    points = np.argwhere(mask & (np.indices(mask.shape)[slice_axis] == k)).astype(float)
    projection = world(affine, points) @ perpendicular
    return float(projection.max() - projection.min())


def check_lesion(image: Volume, mask: np.ndarray, lesion, slice_axis: int) -> None:
    """Every field of `lesion` against answers computed from `mask` independently of the module."""
    affine = image.affine
    voxel_ml = abs(np.linalg.det(affine[:3, :3])) / 1000.0
    assert lesion.voxels == int(mask.sum())
    assert lesion.volume_ml == pytest.approx(mask.sum() * voxel_ml)
    values = image.array[mask].astype(float)
    assert lesion.mean_hu == pytest.approx(values.mean())
    assert lesion.sd_hu == pytest.approx(values.std())
    centroid = world(affine, np.argwhere(mask).astype(float).mean(axis=0)[None])[0]
    assert lesion.centroid_ras_mm == pytest.approx(tuple(centroid))
    assert lesion.centroid_lps_mm == pytest.approx((-centroid[0], -centroid[1], centroid[2]))

    long_mm, k = brute_force_axes(affine, mask, slice_axis)
    assert lesion.long_axis_mm == pytest.approx(long_mm, abs=1e-6)
    assert lesion.long_axis_slice == k
    start, end = lesion.long_axis_endpoints_ras_mm
    assert math.dist(start, end) == pytest.approx(long_mm, abs=1e-6)
    # The endpoints are voxel centres of the lesion on the long-axis slice.
    inverse = np.linalg.inv(affine)
    for point in (start, end):
        index = np.rint(inverse[:3, :3] @ np.asarray(point) + inverse[:3, 3]).astype(int)
        assert np.allclose(world(affine, index[None].astype(float))[0], point, atol=1e-6)
        assert mask[tuple(index)] and index[slice_axis] == k
    if long_mm > 0:
        expected_short = perpendicular_extent(affine, mask, slice_axis, k, start, end)
        assert lesion.short_axis_mm == pytest.approx(expected_short, abs=1e-6)
    else:
        assert lesion.short_axis_mm == 0.0


@pytest.mark.parametrize("grid", sorted(AFFINES))
def test_box_and_ellipsoid_lesions_match_brute_force(grid):
    affine = AFFINES[grid]
    box, ellipsoid = box_mask(), ellipsoid_mask()
    image, label = constructed_case(affine, [box, ellipsoid])
    result = measure_case(image, label)

    assert result.slice_axis == 2
    assert result.lesion_count == 2 and [lesion.number for lesion in result.lesions] == [1, 2]
    # The ellipsoid is larger, so it comes first.
    assert ellipsoid.sum() > box.sum()
    big, small = result.lesions
    check_lesion(image, ellipsoid, big, 2)
    check_lesion(image, box, small, 2)
    assert big.long_axis_slice == 7
    # The box's cross-sections are all equal: the first slice holds its long axis.
    assert small.long_axis_slice == 2

    voxel_ml = 0.7 * 0.9 * 2.5 / 1000.0
    assert result.liver_ml == pytest.approx(np.count_nonzero(label >= 1) * voxel_ml)
    assert result.tumor_ml == pytest.approx((box.sum() + ellipsoid.sum()) * voxel_ml)
    assert result.tumor_burden_percent == pytest.approx(100 * result.tumor_ml / result.liver_ml)


@pytest.mark.parametrize("grid", ["ras_anisotropic", "lps_dicom_like"])
def test_box_axes_known_by_hand(grid):
    """An axis-aligned 9 x 5 pixel box: the long axis is its diagonal between corner pixel centres."""
    image, label = constructed_case(AFFINES[grid], [box_mask()])
    (lesion,) = measure_case(image, label).lesions
    a, b = 8 * 0.7, 4 * 0.9
    diagonal = math.hypot(a, b)
    assert lesion.long_axis_mm == pytest.approx(diagonal)
    assert lesion.short_axis_mm == pytest.approx(2 * a * b / diagonal)
    assert lesion.voxels == 135
    assert lesion.volume_ml == pytest.approx(135 * 0.7 * 0.9 * 2.5 / 1000)


def test_lps_centroid_sign_convention():
    """With a DICOM-like affine the RAS centroid is the voxel centroid mapped through it; LPS flips x and y."""
    image, label = constructed_case(AFFINES["lps_dicom_like"], [box_mask()])
    (lesion,) = measure_case(image, label).lesions
    # The box spans i 4..12, j 5..9, k 2..4: its centroid index is (8, 7, 3).
    expected_ras = (120.0 - 8 * 0.7, 100.0 - 7 * 0.9, -50.0 + 3 * 2.5)
    assert lesion.centroid_ras_mm == pytest.approx(expected_ras)
    assert lesion.centroid_lps_mm == pytest.approx((-expected_ras[0], -expected_ras[1], expected_ras[2]))


def test_slice_axis_follows_the_superior_direction():
    """The same case stored with the slices along the first array axis: axis 0 becomes the slice axis."""
    affine = AFFINES["lps_dicom_like"]
    box, ellipsoid = box_mask(), ellipsoid_mask()
    image, label = constructed_case(affine, [box, ellipsoid])
    order = (2, 0, 1)
    permuted_affine = np.eye(4)
    permuted_affine[:3, :3] = affine[:3, list(order)]
    permuted_affine[:3, 3] = affine[:3, 3]
    permuted = Volume(array=image.array.transpose(order), affine=permuted_affine, source="permuted.nii.gz")
    result = measure_case(permuted, label.transpose(order))
    original = measure_case(image, label)
    assert result.slice_axis == 0 and axial_slice_axis(permuted_affine) == 0
    check_lesion(permuted, ellipsoid.transpose(order), result.lesions[0], 0)
    check_lesion(permuted, box.transpose(order), result.lesions[1], 0)
    for moved, kept in zip(result.lesions, original.lesions):
        assert moved.long_axis_mm == pytest.approx(kept.long_axis_mm)
        assert moved.short_axis_mm == pytest.approx(kept.short_axis_mm)
        assert moved.long_axis_slice == kept.long_axis_slice
        assert moved.centroid_ras_mm == pytest.approx(kept.centroid_ras_mm)


@pytest.mark.parametrize("width", [8.0, 2.0])
def test_rotated_rectangle_has_a_diagonal_long_axis(width):
    """A 30 mm long rectangle drawn at 45 degrees on a 0.8 mm grid."""
    shape = (60, 60, 5)
    i, j = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    u = ((i - 30) + (j - 30)) * 0.8 / math.sqrt(2)
    v = ((i - 30) - (j - 30)) * 0.8 / math.sqrt(2)
    mask = np.zeros(shape, bool)
    mask[:, :, 2] = (np.abs(u) <= 15.0) & (np.abs(v) <= width / 2)
    affine = make_affine(np.eye(3), spacing=(0.8, 0.8, 3.0))
    image, label = constructed_case(affine, [mask])
    (lesion,) = measure_case(image, label).lesions
    check_lesion(image, mask, lesion, 2)
    # The Feret diameter of a rectangle is its diagonal: at 45 +- atan(width / 30) degrees, hypot(30, width) mm
    # long, with a perpendicular extent of 2 * 30 * width / hypot(30, width) mm. Centre-to-centre on the raster
    # loses less than two pixels.
    start, end = lesion.long_axis_endpoints_ras_mm
    direction = np.subtract(end, start)[:2]
    angle = math.degrees(math.atan2(abs(direction[1]), abs(direction[0])))
    offset = math.degrees(math.atan2(width, 30))
    assert direction[0] * direction[1] > 0
    assert abs(abs(angle - 45) - offset) < 4.0
    diagonal = math.hypot(30, width)
    assert diagonal - 1.6 < lesion.long_axis_mm <= diagonal + 1e-6
    # A strip a few pixels wide has its Feret diameter along the strip, so its short axis is about its width.
    expected_short = 2 * 30 * width / diagonal if width > 4 else width
    assert lesion.short_axis_mm == pytest.approx(expected_short, abs=1.6)


def test_single_pixel_and_collinear_cross_sections():
    """Diameters are between pixel centres, with no pixel size added."""
    shape = (50, 50, 6)
    single = np.zeros(shape, bool)
    single[5, 5, 1] = True
    pair = np.zeros(shape, bool)
    pair[20, 5, 1] = pair[21, 5, 1] = True
    column = np.zeros(shape, bool)  # 30 pixels along the second axis: more points than the brute-force limit
    column[40, 10:40, 3] = True
    diagonal = np.zeros(shape, bool)  # 30 pixels on an in-plane diagonal, 26-connected
    diagonal[np.arange(5, 35), np.arange(12, 42), 5] = True
    image, label = constructed_case(AFFINES["ras_anisotropic"], [single, pair, column, diagonal])
    result = measure_case(image, label)
    one, two, line, slant = (lesion_for(result, image, mask) for mask in (single, pair, column, diagonal))
    assert one.long_axis_mm == 0.0 and one.short_axis_mm == 0.0
    assert one.long_axis_endpoints_ras_mm[0] == pytest.approx(one.centroid_ras_mm)
    assert one.long_axis_endpoints_ras_mm[1] == pytest.approx(one.centroid_ras_mm)
    assert two.long_axis_mm == pytest.approx(0.7) and two.short_axis_mm == pytest.approx(0.0)
    assert line.long_axis_mm == pytest.approx(29 * 0.9) and line.short_axis_mm == pytest.approx(0.0, abs=1e-9)
    assert slant.long_axis_mm == pytest.approx(29 * math.hypot(0.7, 0.9))
    assert slant.short_axis_mm == pytest.approx(0.0, abs=1e-9)
    for mask, lesion in zip((single, pair, column, diagonal), (one, two, line, slant)):
        check_lesion(image, mask, lesion, 2)


def lesion_for(result: CaseMeasurements, image: Volume, mask: np.ndarray):
    """The measured lesion that is `mask` (same voxel count and centroid)."""
    centroid = world(image.affine, np.argwhere(mask).astype(float).mean(axis=0)[None])[0]
    matches = [
        lesion
        for lesion in result.lesions
        if lesion.voxels == int(mask.sum()) and np.allclose(lesion.centroid_ras_mm, centroid)
    ]
    assert len(matches) == 1
    return matches[0]


def test_lesions_ordered_by_volume():
    shape = (40, 40, 8)
    masks = []
    for n, (start, size) in enumerate([(2, 2), (8, 5), (20, 3), (30, 6)]):
        mask = np.zeros(shape, bool)
        mask[start : start + size, 4 + n : 4 + n + size, 2:4] = True
        masks.append(mask)
    image, label = constructed_case(AFFINES["ras_anisotropic"], masks)
    result = measure_case(image, label)
    assert [lesion.voxels for lesion in result.lesions] == [72, 50, 18, 8]
    assert [lesion.number for lesion in result.lesions] == [1, 2, 3, 4]
    for lesion, mask in zip(result.lesions, [masks[3], masks[1], masks[2], masks[0]]):
        check_lesion(image, mask, lesion, 2)


def test_diagonal_neighbours_form_one_lesion():
    shape = (10, 10, 10)
    corner = np.zeros(shape, bool)
    corner[3, 3, 3] = corner[4, 4, 4] = True
    apart = np.zeros(shape, bool)
    apart[7, 7, 7] = True
    image, label = constructed_case(AFFINES["ras_anisotropic"], [corner, apart])
    result = measure_case(image, label)
    assert result.lesion_count == 2
    assert [lesion.voxels for lesion in result.lesions] == [2, 1]
    corner_lesion = result.lesions[0]
    assert corner_lesion.long_axis_mm == 0.0 and corner_lesion.long_axis_slice == 3


def test_empty_liver_and_no_tumour():
    image, _ = constructed_case(AFFINES["ras_anisotropic"], [box_mask()])
    empty = measure_case(image, np.zeros(SHAPE, np.uint8))
    assert (empty.liver_ml, empty.tumor_ml, empty.lesion_count, empty.lesions) == (0.0, 0.0, 0, ())
    assert math.isnan(empty.tumor_burden_percent)
    document = empty.to_dict()
    assert document["tumor_burden_percent"] is None and document["lesions"] == []
    json.dumps(document, allow_nan=False)
    assert "-" in format_measurement_table(empty)

    liver_only = np.zeros(SHAPE, np.uint8)
    liver_only[5:20, 5:20, 2:6] = 1
    result = measure_case(image, liver_only)
    assert result.liver_ml == pytest.approx(15 * 15 * 4 * 0.7 * 0.9 * 2.5 / 1000)
    assert result.tumor_ml == 0.0 and result.tumor_burden_percent == 0.0 and result.lesions == ()


def test_shape_mismatch_names_the_source():
    image, label = constructed_case(AFFINES["ras_anisotropic"], [box_mask()])
    with pytest.raises(InputError, match="constructed.nii.gz") as info:
        measure_case(image, label[:, :, :-1])
    assert "shape" in info.value.problem and str(SHAPE) in info.value.problem


@pytest.mark.parametrize("name", ["x.nii.gz", "x.nii", "x.dcm"])
def test_measurement_paths(tmp_path, name):
    assert measurement_paths(tmp_path / name) == (tmp_path / "x.json", tmp_path / "x.csv")


def _read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("name", ["x.nii.gz", "x.dcm"])
def test_written_files_reread_equal(tmp_path, name):
    image, label = constructed_case(AFFINES["lps_dicom_like"], [box_mask(), ellipsoid_mask()])
    result = measure_case(image, label)
    json_path, csv_path = write_measurements(result, tmp_path / name, source="case_017")
    assert (json_path, csv_path) == (tmp_path / "x.json", tmp_path / "x.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.csv", "x.json"]

    document = json.loads(json_path.read_text(encoding="utf-8"))
    assert document == measurements_document(result, "case_017")
    assert document["source"] == "case_017" and document["units"]["volume"] == "mL"
    assert document["lesion_count"] == 2 and document["liver_ml"] == round(result.liver_ml, 2)
    assert [entry["number"] for entry in document["lesions"]] == [1, 2]
    first = document["lesions"][0]
    assert first["long_axis_mm"] == round(result.lesions[0].long_axis_mm, 2)
    assert first["centroid_lps_mm"] == pytest.approx(result.lesions[0].centroid_lps_mm, abs=0.005)
    for stored, point in zip(first["long_axis_endpoints_ras_mm"], result.lesions[0].long_axis_endpoints_ras_mm):
        assert stored == pytest.approx(point, abs=0.005)
    assert not any("patient" in key.lower() for key in document)

    rows = _read_csv(csv_path)
    assert len(rows) == 2 and tuple(rows[0]) == CSV_COLUMNS
    for row, lesion in zip(rows, result.lesions):
        assert int(row["number"]) == lesion.number and int(row["voxels"]) == lesion.voxels
        assert int(row["long_axis_slice"]) == lesion.long_axis_slice
        for column, value in (
            ("volume_ml", lesion.volume_ml),
            ("long_axis_mm", lesion.long_axis_mm),
            ("short_axis_mm", lesion.short_axis_mm),
            ("mean_hu", lesion.mean_hu),
            ("sd_hu", lesion.sd_hu),
            ("centroid_lps_x_mm", lesion.centroid_lps_mm[0]),
            ("centroid_ras_z_mm", lesion.centroid_ras_mm[2]),
            ("long_axis_end_ras_y_mm", lesion.long_axis_endpoints_ras_mm[1][1]),
        ):
            assert float(row[column]) == pytest.approx(value, abs=0.051)


def test_written_files_without_lesions(tmp_path):
    image, _ = constructed_case(AFFINES["ras_anisotropic"], [box_mask()])
    json_path, csv_path = write_measurements(measure_case(image, np.zeros(SHAPE, np.uint8)), tmp_path / "x.nii.gz")
    assert json.loads(json_path.read_text())["tumor_burden_percent"] is None
    assert csv_path.read_text().splitlines() == [",".join(CSV_COLUMNS)]


def test_nothing_left_behind_when_the_folder_is_a_file(tmp_path):
    blocker = tmp_path / "out"
    blocker.write_text("not a folder")
    image, label = constructed_case(AFFINES["ras_anisotropic"], [box_mask()])
    with pytest.raises(OutputError):
        write_measurements(measure_case(image, label), blocker / "x.nii.gz")
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and blocker.read_text() == "not a folder"


def test_nothing_left_behind_when_the_second_file_fails(tmp_path, monkeypatch):
    real_write = measurements_module._write_text

    def failing(path, text):
        if path.name.endswith(".csv"):
            raise OSError(28, "No space left on device")
        real_write(path, text)

    monkeypatch.setattr(measurements_module, "_write_text", failing)
    image, label = constructed_case(AFFINES["ras_anisotropic"], [box_mask()])
    with pytest.raises(OutputError, match="disk full"):
        write_measurements(measure_case(image, label), tmp_path / "x.nii.gz")
    assert list(tmp_path.iterdir()) == []


def _table_case(count: int) -> CaseMeasurements:
    shape = (60, 60, 6)
    masks = []
    for n in range(count):
        mask = np.zeros(shape, bool)
        row, col = divmod(n, 5)
        mask[4 + 10 * row : 4 + 10 * row + 1 + n % 4, 4 + 10 * col : 7 + 10 * col, 2:4] = True
        masks.append(mask)
    image, label = constructed_case(make_affine(np.eye(3)), masks)
    return measure_case(image, label)


def test_measurement_table():
    few = _table_case(3)
    text = format_measurement_table(few)
    lines = text.splitlines()
    assert "Liver" in lines[0] and f"{few.liver_ml:.1f} mL" in lines[0]
    assert "Tumour" in lines[1] and f"{few.tumor_burden_percent:.1f} % of liver" in lines[1]
    assert "Lesions" in lines[2] and lines[2].rstrip().endswith("3")
    lesion = few.lesions[0]
    row = lines[4]
    assert row.split()[0] == "1" and f"{lesion.long_axis_mm:.1f} x {lesion.short_axis_mm:.1f}" in row
    assert f"{lesion.mean_hu:.0f} ± {lesion.sd_hu:.0f}" in row and "more" not in text
    assert len(lines) == 4 + 3

    many = format_measurement_table(_table_case(12)).splitlines()
    assert len(many) == 4 + 10 + 1 and many[-1].strip() == "... and 2 more"


def test_small_phantom_matches_summary(small_phantom):
    from livervae.data.summary import summarise_case

    image, label_volume, _ = small_phantom
    label = label_volume.array
    result = measure_case(image, label)
    summary = summarise_case(image, label)
    components, count = ndimage.label(label == 2, structure=LESION_CONNECTIVITY)
    assert result.lesion_count == count == summary["lesion_count"]
    assert result.liver_ml == pytest.approx(summary["liver_ml"], abs=0.005)
    assert result.tumor_ml == pytest.approx(summary["tumor_ml"], abs=0.005)
    assert [lesion.volume_ml for lesion in result.lesions] == pytest.approx(summary["lesion_volumes_ml"], abs=5e-4)
    slice_axis = axial_slice_axis(image.affine)
    assert result.slice_axis == slice_axis
    for n in range(1, count + 1):
        mask = components == n
        check_lesion(image, mask, lesion_for(result, image, mask), slice_axis)
