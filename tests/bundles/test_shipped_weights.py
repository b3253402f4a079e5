"""The weights that ship in git: they match their metadata, and they segment the shipped real CT as recorded.

Every number asserted here is the one `configs/metadata.json` recorded for the same file (its SHA-256 is checked
first), and the README's results table must print it, so a changed model, metric or document fails.
"""

import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from livervae.bundle import (
    LIVER_BUNDLE,
    PATCH_BUNDLES,
    TUMOR_BUNDLE,
    BundlePredictor,
    evaluate,
    file_sha256,
    recorded_metrics,
)
from livervae.data.formats.ircadb import read_patient
from livervae.io.dicom_seg import read_dicom_seg_labels
from livervae.io.dicom_series import read_dicom_series
from livervae.io.nifti import load_nifti, save_nifti
from livervae.labels import LIVER, TUMOR
from livervae.metrics.lesions import detection_summary, match_lesions
from livervae.paths import repo_root

REAL = "real_ct_3dircadb1_17"
UNSEEN = "unseen_phantoms"
MAX_BYTES = 15 * 1024 * 1024


def _metadata(bundle: str) -> dict:
    return json.loads((repo_root() / "bundles" / bundle / "configs" / "metadata.json").read_text())


def _model(bundle: str):
    return repo_root() / "bundles" / bundle / "models" / "model.pt"


def _dice(pred: np.ndarray, ref: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(pred & ref) / (np.count_nonzero(pred) + np.count_nonzero(ref))


def _lesion_metrics(pred_tumor: np.ndarray, ref_tumor: np.ndarray) -> dict[str, float]:
    """The `lesion_*` numbers `record_eval_metrics` writes for one case: LiTS (IoU > 0.5) and the any-overlap ones.

    Rounded and NaN-free as recorded; the volume per voxel only bins lesions by size, which is not recorded.
    """
    matching = match_lesions(pred_tumor, ref_tumor, voxel_ml=1.0)
    lits = detection_summary(matching.reference, matching.predicted)
    any_overlap = detection_summary(matching.reference_any_overlap, matching.predicted_any_overlap)
    values = {f"lesion_{key}": lits[key] for key in ("recall", "precision", "detected", "reference_lesions")}
    values |= {f"lesion_any_overlap_{key}": any_overlap[key] for key in ("recall", "precision")}
    return {key: round(float(value), 4) for key, value in values.items() if not math.isnan(value)}


@pytest.mark.parametrize("bundle", [LIVER_BUNDLE, TUMOR_BUNDLE])
def test_shipped_weights_are_the_ones_their_metadata_describes(bundle):
    model, metadata = _model(bundle), _metadata(bundle)
    assert model.is_file(), f"{model} must ship in git"
    assert model.stat().st_size <= MAX_BYTES
    digest = file_sha256(model)
    training = metadata["training"]
    assert training["model_sha256"] == digest and training["model_bytes"] == model.stat().st_size
    assert set(metadata["eval_data"]) == {UNSEEN, REAL}
    assert sorted(metadata["eval_metrics"]) == sorted(
        f"{label}_{key}" for label in (UNSEEN, REAL) for key in recorded_metrics(metadata, label)
    )
    assert all(recorded_metrics(metadata, label)["liver_dice_mean"] > 0 for label in (UNSEEN, REAL))
    assert all(entry["model_sha256"] == digest for entry in metadata["eval_data"].values())
    # Nothing from 3D-IRCADb trained or chose the model: phantoms or synthetic CT only.
    assert training["data"].startswith(("phantoms", "synthetic"))
    assert not any("ircad" in c for c in training["training_cases"] + training["validation_cases"])
    assert training["best_epoch"] <= training["epochs"] == training["max_epochs"]
    assert re.fullmatch(r"[0-9a-f]{40}", training["commit"])


@pytest.mark.parametrize("bundle", [LIVER_BUNDLE, TUMOR_BUNDLE])
def test_readme_and_bundle_readme_print_the_recorded_real_ct_dice(bundle):
    recorded = recorded_metrics(_metadata(bundle), REAL)["liver_dice_mean"]
    bundle_readme = (repo_root() / "bundles" / bundle / "docs" / "README.md").read_text()
    assert f"{recorded:.3f}" in bundle_readme
    if bundle == TUMOR_BUNDLE:
        assert f"real CT liver Dice {recorded:.3f}" in (repo_root() / "README.md").read_text()


@pytest.fixture(scope="module")
def real_reference(real_case, tmp_path_factory):
    """The real CT read from its DICOM series, staged as NIfTI (as `livervae infer` does), and its reference."""
    case = read_patient(real_case)
    staged = tmp_path_factory.mktemp("real") / "ct.nii.gz"
    save_nifti(case.image, staged)
    return staged, case.label.array


def _predict(bundle: str, staged) -> np.ndarray:
    return BundlePredictor(bundle, device="cpu").predict_volume(staged, load_nifti(staged)).array


@pytest.fixture(scope="module")
def two_stage_prediction(real_reference):
    return _predict(TUMOR_BUNDLE, real_reference[0])


def test_shipped_two_stage_model_segments_the_real_ct_as_recorded(two_stage_prediction, real_reference):
    _, reference = real_reference
    pred = two_stage_prediction
    assert pred.shape == reference.shape and set(np.unique(pred)) <= {0, LIVER, TUMOR}
    recorded = recorded_metrics(_metadata(TUMOR_BUNDLE), REAL)
    liver = _dice(pred >= LIVER, reference >= LIVER)
    assert liver == pytest.approx(recorded["liver_dice_mean"], abs=2e-3)
    assert liver >= recorded["liver_dice_mean"] - 0.02
    assert _dice(pred == TUMOR, reference == TUMOR) == pytest.approx(recorded["tumor_dice_mean"], abs=5e-3)
    lesions = {key: value for key, value in recorded.items() if key.startswith("lesion_")}
    assert {"lesion_detected", "lesion_any_overlap_recall", "lesion_any_overlap_precision"} <= set(lesions)
    assert _lesion_metrics(pred == TUMOR, reference == TUMOR) == lesions


def test_shipped_liver_model_segments_the_real_ct_as_recorded(real_reference):
    staged, reference = real_reference
    pred = _predict(LIVER_BUNDLE, staged)
    recorded = recorded_metrics(_metadata(LIVER_BUNDLE), REAL)["liver_dice_mean"]
    assert _dice(pred >= LIVER, reference >= LIVER) == pytest.approx(recorded, abs=2e-3)


@pytest.mark.parametrize("bundle", [LIVER_BUNDLE, TUMOR_BUNDLE])
@pytest.mark.parametrize("subject", [0, 1])
def test_shipped_models_find_almost_no_liver_on_real_ct_without_one(subject, bundle):
    """TotalSegmentator s0002 (neck) and s0003 show no liver: the shipped liver model and the chain a user runs
    must each find under 5 mL on both.

    The liver model predicted 0.21 and 0.33 mL (0.4.0, trained with negative cases), the chain with it as stage 1
    (0.6.0 and 0.7.0) 0.05 and 0.17 mL; the liver model 0.3.0 predicted 8.3 and 10.7 mL (the chain with it 8.2 and
    4.7), the phantom-trained weights 573 and 738 mL.
    """
    from livervae.data.synthetic.label_maps import no_liver_ct_paths

    path = no_liver_ct_paths()[subject]
    image = load_nifti(path)
    pred = BundlePredictor(bundle, device="cpu").predict_volume(path, image).array
    assert pred.shape == image.array.shape
    assert np.count_nonzero(pred >= LIVER) * image.voxel_volume_ml < 5.0


def test_make_infer_on_the_dicom_series_writes_a_seg_equal_to_the_nifti_prediction(
    real_case, tmp_path, two_stage_prediction
):
    """`livervae infer` (what `make infer` runs) with the shipped weights, DICOM in, DICOM-SEG out."""
    script = os.path.join(os.path.dirname(sys.executable), "livervae")
    output = tmp_path / "out" / "seg.dcm"
    done = subprocess.run(
        [script, "infer", "-i", str(real_case / "PATIENT_DICOM"), "-o", str(output), "--device", "cpu"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Liver ") and str(output.with_name("seg_sr.dcm")) in done.stdout
    written = {"seg.dcm", "seg_sr.dcm", "seg.json", "seg.csv", "seg.png"}
    assert {p.name for p in output.parent.iterdir()} == written
    seg = read_dicom_seg_labels(output, read_dicom_series(real_case / "PATIENT_DICOM")).array
    assert np.array_equal(seg, two_stage_prediction)


@pytest.fixture(scope="module")
def real_dataset(real_case, tmp_path_factory):
    from livervae.data.preprocess import preprocess

    out = tmp_path_factory.mktemp("real_dataset") / "3dircadb1_17"
    preprocess("ircadb", real_case, out, n_folds=1)
    return out


@pytest.mark.parametrize("bundle", PATCH_BUNDLES)
def test_shipped_patch_models_score_the_real_ct_as_recorded(bundle, real_dataset, tmp_path):
    """The patch bundles' weights: recorded with their hash, and the real CT's patch AUC is the recorded one."""
    model, metadata = _model(bundle), _metadata(bundle)
    assert model.is_file() and model.stat().st_size <= MAX_BYTES
    assert metadata["training"]["model_sha256"] == file_sha256(model)
    assert all(entry["model_sha256"] == file_sha256(model) for entry in metadata["eval_data"].values())
    assert "ircad" not in metadata["training"]["held_out_patient"]
    assert not any("ircad" in case for case in metadata["training"]["training_cases"])
    summary = evaluate(bundle, real_dataset, split="all", output_dir=tmp_path / "eval", device="cpu")["summary"]
    assert summary["auc_pooled"] == pytest.approx(recorded_metrics(metadata, REAL)["auc_pooled"], abs=1e-3)
