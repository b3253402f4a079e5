import numpy as np
import pytest

from livervae.errors import InputError
from livervae.io.volume import Volume, as_compact_ct, describe_grid_difference, require_3d, require_finite


def test_geometry_properties(ct_volume):
    assert ct_volume.shape == (24, 20, 8)
    assert ct_volume.spacing == pytest.approx((0.9, 0.9, 2.5))
    assert ct_volume.axcodes == "LPS"
    assert ct_volume.voxel_volume_ml == pytest.approx(0.9 * 0.9 * 2.5 / 1000)


def test_same_grid_tolerates_header_rounding_but_not_a_shift(ct_volume):
    nudged = Volume(ct_volume.array, ct_volume.affine + 1e-6)
    shifted_affine = ct_volume.affine.copy()
    shifted_affine[0, 3] += 0.5
    shifted = Volume(ct_volume.array, shifted_affine)
    assert ct_volume.same_grid(nudged)
    assert not ct_volume.same_grid(shifted)
    assert "affine differs by up to 0.5" in describe_grid_difference(ct_volume, shifted)


def test_require_3d_drops_trailing_singletons_and_refuses_the_rest():
    assert require_3d(np.zeros((4, 5, 6, 1)), "x").shape == (4, 5, 6)
    with pytest.raises(InputError, match="expected a 3D volume, got 2D"):
        require_3d(np.zeros((4, 5)), "slice.nii")
    with pytest.raises(InputError, match="got 4D"):
        require_3d(np.zeros((4, 5, 6, 2)), "dwi.nii")
    with pytest.raises(InputError, match="zero-sized"):
        require_3d(np.zeros((4, 0, 6)), "empty.nii")


def test_require_finite_counts_bad_voxels():
    data = np.zeros((3, 3, 3), dtype=np.float32)
    data[0, 0, 0] = np.nan
    data[1, 1, 1] = np.inf
    with pytest.raises(InputError, match="2 NaN or infinite"):
        require_finite(data, "ct.nii.gz")


def test_as_compact_ct_keeps_whole_numbers_as_int16_only():
    assert as_compact_ct(np.array([-1024.0, 3071.0])).dtype == np.int16
    assert as_compact_ct(np.array([-1024.5, 3071.0])).dtype == np.float32
    assert as_compact_ct(np.array([0, 40000], dtype=np.int32)).dtype == np.float32
