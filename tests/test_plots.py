import numpy as np
from PIL import Image

from livervae.io.volume import Volume
from livervae.plots import (
    View,
    _plane,
    choose_views,
    largest_area_slice,
    largest_lesion_slice,
    lps_spacing,
    save_overlay_png,
    to_lps,
)


def _liver_with_two_lesions() -> np.ndarray:
    label = np.zeros((20, 20, 12), np.uint8)
    label[2:18, 2:18, 2:10] = 1
    label[3:15, 3:15, 6] = 1  # still liver: slice 6 is not larger than the others in liver (tumour counts)
    label[:, :, 4] = 0
    label[2:19, 2:19, 4] = 1  # widest liver slice: 4
    label[4:7, 4:7, 2:4] = 2  # small lesion, 18 voxels
    label[10:16, 10:16, 7:9] = 2  # large lesion, 72 voxels, widest on slices 7 and 8
    label[10:12, 10:12, 9] = 2
    return label


def test_views_are_the_widest_liver_slice_the_largest_lesion_and_a_coronal_one():
    label = _liver_with_two_lesions()
    assert largest_area_slice(label >= 1, axis=2) == 4
    assert largest_lesion_slice(label) == 7
    coronal = int((label >= 1).sum(axis=(0, 2)).argmax())
    assert choose_views(label) == [
        View("axial", 4, "largest liver area"),
        View("axial", 7, "largest lesion"),
        View("coronal", coronal, "largest liver area"),
    ]
    no_tumor = np.where(label == 2, 1, label).astype(np.uint8)
    assert [v.reason for v in choose_views(no_tumor)] == ["largest liver area", "largest liver area"]
    # A reference without tumour borrows the lesion of the prediction it is drawn beside.
    assert choose_views(no_tumor, fallback=label)[1] == View("axial", 7, "largest lesion")
    empty = np.zeros((4, 6, 8), np.uint8)
    assert choose_views(empty) == [
        View("axial", 4, "middle slice, no liver"),
        View("coronal", 3, "middle slice, no liver"),
    ]
    assert largest_lesion_slice(empty) is None


def test_planes_are_drawn_anterior_and_superior_up():
    volume = np.arange(2 * 3 * 4).reshape(2, 3, 4)  # L, P, S
    axial = _plane(volume, View("axial", 1, ""))
    assert axial.shape == (3, 2) and axial[0, 0] == volume[0, 0, 1]  # row 0 is anterior, column 0 patient right
    coronal = _plane(volume, View("coronal", 2, ""))
    assert coronal.shape == (4, 2) and coronal[0, 0] == volume[0, 2, 3]  # row 0 is the most superior slice


def test_ras_storage_is_displayed_like_lps():
    array = np.arange(24).reshape(2, 3, 4)
    ras_affine = np.diag([0.5, 0.7, 2.0, 1.0])
    lps = to_lps(array, ras_affine)
    assert np.array_equal(lps, array[::-1, ::-1, :])
    assert np.allclose(lps_spacing(ras_affine, array.shape), [0.5, 0.7, 2.0])
    transposed = np.diag([1.0, 1.0, 1.0, 1.0])[[1, 0, 2, 3]] * [0.5, 0.7, 2.0, 1.0]  # i runs A-P, j runs R-L
    assert np.allclose(lps_spacing(transposed, array.shape), [0.7, 0.5, 2.0])


def test_overlay_png_has_a_row_per_view_and_a_column_per_map(tmp_path, labelled_ct):
    image, label = labelled_ct
    assert (label.array == 2).any()
    path = save_overlay_png(image, label.array, tmp_path / "case.png", title="t", reference=label.array)
    with Image.open(path) as png:
        width, height = png.size
    assert height > width > 700  # two columns, three rows (two axial views and a coronal one)
    single = save_overlay_png(image, label.array, tmp_path / "single.png")
    with Image.open(single) as png:
        assert png.size[0] > 2 * png.size[1]  # one map: the views side by side
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.png", "single.png"]
    assert save_overlay_png(Volume(image.array, image.affine), None, tmp_path / "ct.png").is_file()
