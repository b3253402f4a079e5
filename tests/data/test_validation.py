import numpy as np
import pytest

from livervae.data.validation import check_ct_image, check_label_map
from livervae.errors import InputError
from livervae.io.volume import Volume


def _label(ct_volume, fill=None, affine=None, source="label.nii.gz"):
    array = np.zeros(ct_volume.shape, dtype=np.uint8) if fill is None else fill
    if fill is None:
        array[5:15, 5:15, 2:6] = 1
        array[8:10, 8:10, 3:4] = 2
    return Volume(array, ct_volume.affine if affine is None else affine, source)


def test_valid_label_map_comes_back_as_uint8(ct_volume):
    label = _label(ct_volume)
    label.array = label.array.astype(np.float32)
    checked = check_label_map(label, ct_volume)
    assert checked.dtype == np.uint8 and int(checked.sum()) == 10 * 10 * 4 + 4


def test_label_grid_must_match_the_image(ct_volume):
    shifted = ct_volume.affine.copy()
    shifted[2, 3] += 2.5
    with pytest.raises(InputError, match="label.nii.gz: label grid does not match image synthetic: affine differs"):
        check_label_map(_label(ct_volume, affine=shifted), ct_volume)
    small = np.zeros((24, 20, 7), dtype=np.uint8)
    with pytest.raises(InputError, match=r"shape \(24, 20, 7\) differs from \(24, 20, 8\)"):
        check_label_map(_label(ct_volume, fill=small), ct_volume)


def test_unknown_and_fractional_labels(ct_volume):
    array = np.zeros(ct_volume.shape, dtype=np.int16)
    array[1, 1, 1], array[2, 2, 2], array[3, 3, 3] = 1, 3, 7
    with pytest.raises(InputError, match=r"label values \[3, 7\] outside 0 background, 1 liver, 2 tumor"):
        check_label_map(_label(ct_volume, fill=array), ct_volume)
    fractional = np.zeros(ct_volume.shape, dtype=np.float32)
    fractional[1, 1, 1] = 0.5
    with pytest.raises(InputError, match="non-integer"):
        check_label_map(_label(ct_volume, fill=fractional), ct_volume)


def test_empty_liver_is_refused_unless_allowed(ct_volume):
    empty = np.zeros(ct_volume.shape, dtype=np.uint8)
    with pytest.raises(InputError, match="empty liver"):
        check_label_map(_label(ct_volume, fill=empty), ct_volume)
    assert check_label_map(_label(ct_volume, fill=empty), ct_volume, require_liver=False).sum() == 0


def test_ct_checks(ct_volume):
    check_ct_image(ct_volume)
    mr_like = Volume(np.clip(ct_volume.array, 0, None), ct_volume.affine, "t1.nii.gz")
    with pytest.raises(InputError, match="t1.nii.gz: does not look like a CT in Hounsfield units"):
        check_ct_image(mr_like)
    with_nan = Volume(ct_volume.array.astype(np.float32), ct_volume.affine, "nan.nii.gz")
    with_nan.array[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        check_ct_image(with_nan)
