import numpy as np
import pytest

from livervae.bundle import PATCH_VAE_BUNDLE
from livervae.cli import main
from livervae.errors import InputError
from livervae.io.nifti import save_nifti
from livervae.io.volume import Volume
from livervae.patch_infer import infer_patches, read_liver_mask


def _write(path, array, affine):
    save_nifti(Volume(array, affine), path)
    return path


def test_liver_mask_must_match_the_ct(tmp_path, ct_volume):
    ct = _write(tmp_path / "ct.nii.gz", ct_volume.array, ct_volume.affine)
    liver = np.zeros(ct_volume.shape, dtype=np.uint8)
    liver[5:10, 5:10, 2:5] = 1
    good = _write(tmp_path / "liver.nii.gz", liver, ct_volume.affine)
    read_liver_mask(good, ct_volume.shape, ct_volume.affine)
    with pytest.raises(InputError, match="other.nii.gz: liver mask of shape .* is not on the CT's grid"):
        read_liver_mask(
            _write(tmp_path / "other.nii.gz", liver[:, :, :4], ct_volume.affine), ct_volume.shape, ct_volume.affine
        )
    shifted = ct_volume.affine.copy()
    shifted[0, 3] += 5.0
    with pytest.raises(InputError, match="another orientation, spacing or origin"):
        read_liver_mask(_write(tmp_path / "shifted.nii.gz", liver, shifted), ct_volume.shape, ct_volume.affine)
    with pytest.raises(InputError, match="empty liver"):
        read_liver_mask(
            _write(tmp_path / "empty.nii.gz", liver * 0, ct_volume.affine), ct_volume.shape, ct_volume.affine
        )
    with pytest.raises(InputError, match="give its liver mask"):
        infer_patches(ct, None, tmp_path / "out.nii.gz")
    with pytest.raises(InputError, match="output must end in .nii"):
        infer_patches(ct, good, tmp_path / "out.png")
    with pytest.raises(InputError, match="not a patch bundle"):
        infer_patches(ct, good, tmp_path / "out.nii.gz", bundle="liver_ct_segmentation")
    with pytest.raises(InputError, match="no trained model"):
        infer_patches(ct, good, tmp_path / "out.nii.gz", model_path=tmp_path / "missing.pt")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out")) == []  # nothing partial


def test_cli_reports_a_missing_mask_in_one_line(tmp_path, ct_volume, capsys):
    ct = _write(tmp_path / "ct.nii.gz", ct_volume.array, ct_volume.affine)
    status = main(["infer", "--bundle", PATCH_VAE_BUNDLE, "-i", str(ct), "-o", str(tmp_path / "p.nii.gz")])
    assert status == 2 and "give its liver mask (--liver-mask)" in capsys.readouterr().err
    status = main(
        [
            "infer",
            "--bundle",
            PATCH_VAE_BUNDLE,
            "-i",
            str(ct),
            "--liver-mask",
            str(tmp_path / "nope.nii.gz"),
            "-o",
            str(tmp_path / "p.nii.gz"),
        ]
    )
    assert status == 2 and "nope.nii.gz: liver mask not found" in capsys.readouterr().err
