"""Laying out the MONAI Label app and studies folder (the server itself is tested in test_monailabel_server.py)."""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from livervae.errors import InputError
from livervae.io.checkpoint import apply_settings
from livervae.monailabel_app import (
    GENERATED_CONFIGS,
    find_sample_app,
    prepare_app,
    prepare_bundle,
    prepare_studies,
)
from livervae.paths import repo_root

SETTINGS = {"pixdim": [2.0, 2.0, 2.0], "patch_size": [64, 64, 64], "init_filters": 8, "liver_pixdim": [4.0, 4.0, 4.0]}


@pytest.fixture()
def bundle_source(tmp_path):
    """The tumour bundle's files with a stand-in checkpoint holding recorded settings."""
    source = tmp_path / "project" / "liver_tumor_ct_segmentation"
    shutil.copytree(
        repo_root() / "bundles" / "liver_tumor_ct_segmentation",
        source,
        ignore=shutil.ignore_patterns("models", "runs", "eval", "__pycache__"),
    )
    (source / "models").mkdir()
    torch.save({"model": {"w": torch.zeros(1)}, "settings": SETTINGS}, source / "models" / "model.pt")
    return source


def test_bundle_layout_links_the_project_and_generates_configs(bundle_source, tmp_path):
    destination = tmp_path / "app" / "model" / "liver_tumor_ct_segmentation"
    assert prepare_bundle(bundle_source, destination) == SETTINGS
    for name in ("LICENSE", "docs", "models", "configs/metadata.json", "configs/logging.conf"):
        assert (destination / name).is_symlink() and (destination / name).resolve() == (bundle_source / name).resolve()
    for name in GENERATED_CONFIGS:
        generated = destination / "configs" / name
        assert generated.is_file() and not generated.is_symlink()
        original = json.loads((bundle_source / "configs" / name).read_text())
        expected = apply_settings(original, {**SETTINGS, "restart_finished_runs": True})
        assert json.loads(generated.read_text()) == expected
    # Repeated MONAI Label training requests restart a finished run; the project's own configs do not.
    assert json.loads((destination / "configs" / "train.json").read_text())["restart_finished_runs"] is True
    assert json.loads((bundle_source / "configs" / "train.json").read_text())["restart_finished_runs"] is False
    inference = json.loads((destination / "configs" / "inference.json").read_text())
    assert inference["init_filters"] == 8 and inference["liver_pixdim"] == [4.0, 4.0, 4.0]
    assert [p.name for p in (destination / "models").iterdir()] == ["model.pt"]  # no extra models in the client

    copied = tmp_path / "copy" / "liver_tumor_ct_segmentation"
    prepare_bundle(bundle_source, copied, copy_models=True)
    assert not (copied / "models").is_symlink() and (copied / "models" / "model.pt").is_file()


def test_bundle_without_a_trained_model_is_refused(bundle_source, tmp_path):
    (bundle_source / "models" / "model.pt").unlink()
    with pytest.raises(InputError, match="no trained model"):
        prepare_bundle(bundle_source, tmp_path / "app" / "model" / "x")


def test_app_is_the_sample_app_with_the_bundles(bundle_source, tmp_path, monkeypatch):
    sample = tmp_path / "sample"
    sample.mkdir()
    (sample / "main.py").write_text("# the monaibundle app\n")
    monkeypatch.setattr("livervae.monailabel_app.repo_root", lambda: tmp_path)
    (tmp_path / "bundles").mkdir()
    shutil.move(str(bundle_source), tmp_path / "bundles" / bundle_source.name)
    app = prepare_app(tmp_path / "app", [bundle_source.name], sample_app=sample)
    assert (app / "main.py").read_text() == "# the monaibundle app\n"
    assert (app / "model" / bundle_source.name / "configs" / "inference.json").is_file()
    prepare_app(tmp_path / "app", [bundle_source.name], sample_app=sample)  # refreshing an existing app works


def test_sample_app_must_exist(tmp_path):
    with pytest.raises(InputError, match="monaibundle sample app not found"):
        find_sample_app(tmp_path)


def test_studies_hold_the_real_ct_and_its_reference_label(real_case, tmp_path):
    studies = prepare_studies(tmp_path / "studies")
    image = nib.load(str(studies / "3dircadb1_17.nii.gz"))
    label = np.asarray(nib.load(str(studies / "labels" / "final" / "3dircadb1_17.nii.gz")).dataobj)
    reference = nib.load(str(real_case / "nifti" / "ct.nii.gz"))
    assert image.shape == label.shape == reference.shape and np.allclose(image.affine, reference.affine)
    liver = np.asarray(nib.load(str(real_case / "nifti" / "liver.nii.gz")).dataobj) > 0
    assert np.array_equal(label > 0, liver) and set(np.unique(label)) == {0, 1, 2}
    assert int((label == 2).sum()) == 185990  # both tumours (SOURCE.md)
    before = (studies / "labels" / "final" / "3dircadb1_17.nii.gz").stat().st_mtime_ns
    prepare_studies(studies)  # a label saved by a client is never overwritten
    assert (studies / "labels" / "final" / "3dircadb1_17.nii.gz").stat().st_mtime_ns == before
