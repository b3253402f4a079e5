import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from livervae.cli import main
from livervae.errors import InputError


def test_preprocess_dicom_seg_from_the_command_line(tmp_path, dcmqi, capsys):
    assert main(["preprocess", "--format", "dicom-seg", "--source", str(dcmqi), "--out", str(tmp_path / "ds")]) == 0
    printed = capsys.readouterr().out
    assert "dcmqi_ct3slice_liver_seg" in printed and "512x512x3" in printed
    datalist = json.loads((tmp_path / "ds" / "datalist.json").read_text())
    assert datalist["training"][0]["label"] == "labels/dcmqi_ct3slice_liver_seg.nii.gz"


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda d: d / "missing", "source not found"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "no DICOM image slices found"),
    ],
)
def test_bad_input_gives_one_line_exit_2_and_no_output(tmp_path, capsys, make_input, message):
    source = make_input(tmp_path)
    status = main(["preprocess", "--format", "dicom", "--source", str(source), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert err[-1].startswith("livervae: error: ") and message in err[-1]
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_nan_volume_from_the_command_line(tmp_path, capsys, labelled_ct):
    image, label = labelled_ct
    data = image.array.astype(np.float32)
    data[3, 3, 3] = np.nan
    nib.save(nib.Nifti1Image(data, image.affine), str(tmp_path / "volume-0.nii"))
    nib.save(nib.Nifti1Image(label.array, image.affine), str(tmp_path / "segmentation-0.nii"))
    status = main(["preprocess", "--format", "lits", "--source", str(tmp_path), "--out", str(tmp_path / "out")])
    assert status == 2
    assert f"{tmp_path / 'volume-0.nii'}: contains 1 NaN or infinite voxel values" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_console_script_is_installed():
    script = os.path.join(os.path.dirname(sys.executable), "livervae")
    result = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip().startswith("livervae ")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--bundle", "my_bundle", "--data", "."], "bundle configs run code"),
        (["infer", "-i", "missing.nii.gz", "-o", "out.nii.gz", "--set", "x=1"], "trained model|input not found"),
        (["eval", "--data", ".", "--set", "novalue"], "--set expects KEY=VALUE"),
    ],
)
def test_bundle_commands_refuse_bad_arguments(tmp_path, capsys, argv, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert __import__("re").search(message, capsys.readouterr().err)


def test_infer_refuses_an_unknown_output_and_a_seg_from_nifti(tmp_path, capsys, labelled_ct):
    from livervae.infer import infer

    with pytest.raises(InputError, match=r"output must end in .nii or .nii.gz \(label map\) or .dcm"):
        infer(tmp_path / "ct.nii.gz", tmp_path / "seg.nrrd")
    nib.save(nib.Nifti1Image(labelled_ct[0].array, labelled_ct[0].affine), str(tmp_path / "ct.nii.gz"))
    status = main(["infer", "-i", str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "seg.dcm")])
    assert status == 2 and "a DICOM-SEG output needs a DICOM series input" in capsys.readouterr().err
    assert not (tmp_path / "seg.dcm").exists()
