import numpy as np
from PIL import Image

from livervae.io.volume import Volume
from livervae.plots import lps_spacing, most_informative_slice, save_overlay_png, to_lps


def test_most_informative_slice_prefers_tumour_then_liver():
    label = np.zeros((4, 4, 6), np.uint8)
    label[:, :, 1] = 1
    label[0, 0, 4] = 2
    assert most_informative_slice(label) == 4
    label[label == 2] = 1
    assert most_informative_slice(label) == 1
    assert most_informative_slice(np.zeros((2, 2, 6), np.uint8)) == 3


def test_ras_storage_is_displayed_like_lps():
    array = np.arange(24).reshape(2, 3, 4)
    ras_affine = np.diag([0.5, 0.7, 2.0, 1.0])
    lps = to_lps(array, ras_affine)
    assert np.array_equal(lps, array[::-1, ::-1, :])
    assert np.allclose(lps_spacing(ras_affine, array.shape), [0.5, 0.7, 2.0])
    transposed = np.diag([1.0, 1.0, 1.0, 1.0])[[1, 0, 2, 3]] * [0.5, 0.7, 2.0, 1.0]  # i runs A-P, j runs R-L
    assert np.allclose(lps_spacing(transposed, array.shape), [0.7, 0.5, 2.0])


def test_overlay_png_is_written(tmp_path, labelled_ct):
    image, label = labelled_ct
    path = save_overlay_png(image, label.array, tmp_path / "case.png", title="t", reference=label.array)
    with Image.open(path) as png:
        assert png.size[0] > png.size[1] > 100
    assert [p.name for p in tmp_path.iterdir()] == ["case.png"]
    assert save_overlay_png(Volume(image.array, image.affine), None, tmp_path / "ct.png").is_file()
