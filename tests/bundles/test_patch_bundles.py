"""The patch VAE and U-Net baseline bundles end to end on the CPU: a five-patient phantom cohort, one
leave-one-patient-out fold each (through `livervae cv` and `livervae.crossval.run_fold`), then the bundle checks,
the maps in the input geometry, the coordinates, resume, and inference on the shipped real CT."""

from __future__ import annotations

import csv
import json
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow, verify_metadata, verify_net_in_out
from scipy import ndimage

from livervae.bundle import PATCH_VAE_BUNDLE, UNET_BUNDLE, bundle_root, evaluate, train
from livervae.cli import main
from livervae.crossval import run_fold
from livervae.metrics.patch_auc import roc_auc
from livervae.patch_infer import infer_patches
from livervae.paths import repo_root

sys.path.insert(0, str(repo_root() / "tests"))
from patch_cohort import QUICK, QUICK_UNET, write_cohort  # noqa: E402

FOLD = 1  # tests phantom_001 (hypodense lesions of 20-45 mm); phantom_002 validates
VAE_EPOCHS, EPOCHS = 3, 8


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # On a CPU shared with other jobs, two intra-op threads made these tiny steps 20 times slower than one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _set(overrides):
    return [arg for key, value in overrides.items() for arg in ("--set", f"{key}={json.dumps(value)}")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("patch_bundles")
    cohort = write_cohort(root / "cohort", n=5)
    vae_out = root / "vae_cv"
    args = ["cv", "--bundle", PATCH_VAE_BUNDLE, "--data", str(cohort), "--folds", str(FOLD), "--output", str(vae_out)]
    assert main([*args, "--epochs", str(EPOCHS), *_set({**QUICK, "vae_epochs": VAE_EPOCHS})]) == 0
    unet = run_fold(UNET_BUNDLE, cohort, FOLD, root / "unet", epochs=EPOCHS, overrides=QUICK_UNET)
    return {
        "root": root,
        "cohort": cohort,
        "vae_summary": json.loads((vae_out / "summary.json").read_text()),
        "vae_fold": vae_out / f"fold{FOLD}",
        "vae_model": vae_out / f"fold{FOLD}" / "models" / "model.pt",
        "unet": unet,
    }


def test_patch_vae_learns_the_phantom_tumor_signal(trained):
    fold = trained["vae_summary"]["folds"][str(FOLD)]
    assert fold["test_patient"] == "phantom_001" and fold["tumor_patches"] > 10
    assert fold["auc"] > 0.85  # held-out patient, after 3 + 8 short epochs on three others
    assert trained["vae_summary"]["auc_pooled"] == pytest.approx(fold["auc"])
    checkpoint = torch.load(trained["vae_model"], weights_only=True)
    assert checkpoint["settings"]["patch_size"] == 8 and checkpoint["settings"]["liver_reference_hu"] == 100.0


def test_the_classifier_stage_trains_on_the_frozen_pre_trained_encoder(trained):
    checkpoints = trained["vae_fold"] / "train" / "checkpoints"
    pre = torch.load(checkpoints / "vae" / f"checkpoint_epoch={VAE_EPOCHS}.pt", weights_only=True)["model"]
    final = torch.load(next((checkpoints / "classifier").iterdir()), weights_only=True)["model"]
    encoder = [k for k in pre if k.startswith(("encoder.", "fc_mu.", "fc_logvar."))]
    assert encoder and all(torch.equal(pre[k], final[k]) for k in encoder)  # batch-norm statistics included
    assert any(not torch.equal(pre[k], final[k]) for k in pre if k.startswith("classifier."))
    with open(trained["vae_fold"] / "eval" / "patches.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert all(0.0 <= float(r["bright_fraction"]) <= 1.0 for r in rows)  # the vessel-level share is recorded


def test_unet_baseline_reports_dice_and_the_same_patches(trained):
    unet = trained["unet"]

    def patches(folder):
        with open(folder / "eval" / "patches.csv", newline="") as handle:
            return [(r["case_id"], r["slice"], r["row"], r["col"], r["label"]) for r in csv.DictReader(handle)]

    assert patches(trained["vae_fold"]) == patches(trained["root"] / "unet")  # same patches, same labels
    assert unet["auc_pooled"] > 0.7
    # Dice is the one of the per-case counts the report wrote (2 TP / (pred + ref)), recomputed here.
    with open(trained["root"] / "unet" / "eval" / "metrics.csv", newline="") as handle:
        cases = list(csv.DictReader(handle))
    dices = [
        2 * int(c["tp"]) / (int(c["pred"]) + int(c["ref"])) if int(c["pred"]) + int(c["ref"]) else 1.0 for c in cases
    ]
    assert unet["tumor_dice_mean"] == pytest.approx(float(np.mean(dices)))


def test_probability_and_uncertainty_maps_are_on_the_input_grid(trained):
    source = nib.load(str(trained["cohort"] / "images" / "phantom_001.nii.gz"))
    label = np.asarray(nib.load(str(trained["cohort"] / "labels" / "phantom_001.nii.gz")).dataobj)
    eval_dir = trained["vae_fold"] / "eval"
    prob = nib.load(str(eval_dir / "phantom_001_tumor_probability.nii.gz"))
    var = nib.load(str(eval_dir / "phantom_001_uncertainty.nii.gz"))
    for out in (prob, var):
        assert out.shape == source.shape and np.allclose(out.affine, source.affine, atol=1e-4)
    p, v = np.asarray(prob.dataobj), np.asarray(var.dataobj)
    assert 0.0 <= p.min() and p.max() <= 1.0 and v.min() >= 0.0 and v.max() > 0.0
    # the stitched map lands on the tumour after the inversion to the input grid: voxel-wise it separates tumour
    # from tumour-free liver (a shifted or flipped map would not)
    liver = label >= 1
    assert roc_auc(p[liver].tolist(), (label[liver] == 2).astype(int).tolist()) > 0.85
    assert p[label == 0].mean() < p[label == 1].mean()
    unet_seg = nib.load(str(trained["root"] / "unet" / "eval" / "phantom_001_tumor_seg.nii.gz"))
    assert unet_seg.shape == source.shape and set(np.unique(np.asarray(unet_seg.dataobj))) <= {0, 1}


def test_tumor_coordinates_point_into_the_tumor(trained, tmp_path):
    # short training leaves the probabilities uncalibrated: report the top 10 % of patches
    with open(trained["vae_fold"] / "eval" / "patches.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    threshold = float(np.quantile([float(r["score"]) for r in rows], 0.9))
    tumor_patches = {(int(r["slice"]), int(r["row"]), int(r["col"])) for r in rows if r["label"] == "1"}
    overrides = {"model_path": str(trained["vae_model"]), "decision_threshold": threshold}
    evaluate(PATCH_VAE_BUNDLE, trained["cohort"], FOLD, output_dir=tmp_path, device="cpu", overrides=overrides)
    report = json.loads((tmp_path / "phantom_001_tumor_coordinates.json").read_text())
    label_image = nib.load(str(trained["cohort"] / "labels" / "phantom_001.nii.gz"))
    label = np.asarray(label_image.dataobj)
    points = report["tumor_patches"]
    assert points and all(p["probability"] >= threshold for p in points)
    ijk = np.array([p["input_voxel"] for p in points])
    assert (ijk >= -0.5).all() and (ijk <= np.array(label.shape) - 0.5).all()
    # the centres predicted in true tumour patches land on (or next to) the tumour in the input file's voxels
    spacing = np.abs(np.diag(label_image.affine)[:3])
    distance_mm = ndimage.distance_transform_edt(label != 2, sampling=spacing)
    hits = [
        distance_mm[tuple(np.rint(v).astype(int))]
        for p, v in zip(points, ijk)
        if (p["slice"], *p["patch_origin"]) in tumor_patches
    ]
    assert len(hits) >= 5 and np.mean(np.array(hits) <= spacing[0]) > 0.8


@pytest.mark.parametrize("name", [PATCH_VAE_BUNDLE, UNET_BUNDLE])
def test_bundle_checks(trained, name, tmp_path):
    root = bundle_root(name)
    configs = root / "configs"
    for config, kind in (("train.json", "train"), ("inference.json", "infer")):
        workflow = ConfigWorkflow(
            config_file=str(configs / config),
            meta_file=str(configs / "metadata.json"),
            logging_file=False,
            workflow_type=kind,
            bundle_root=str(root),
            dataset_dir=str(trained["cohort"]),
            output_dir=str(tmp_path),
        )
        workflow.initialize()
        assert workflow.check_properties() == []
    verify_metadata(
        meta_file=str(configs / "metadata.json"), filepath=str(repo_root() / "bundles" / "metadata_schema.json")
    )
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(configs / "metadata.json"),
        config_file=str(configs / "inference.json"),
        device="cpu",
        n=2,
        any=1,
        **({"channels": [8, 16, 32]} if name == UNET_BUNDLE else {}),
    )
    metadata = json.loads((configs / "metadata.json").read_text())
    assert root.name.endswith("_classification" if name == PATCH_VAE_BUNDLE else "_segmentation")
    assert metadata["network_data_format"]["outputs"]["pred"]["channel_def"]["1"] in ("tumor", "tumor")


def test_training_resumes_where_it_stopped(trained):
    fold_dir = trained["vae_fold"]
    vae_ckpt = fold_dir / "train" / "checkpoints" / "vae" / f"checkpoint_epoch={VAE_EPOCHS}.pt"
    before = vae_ckpt.stat().st_mtime_ns
    train(
        PATCH_VAE_BUNDLE,
        trained["cohort"],
        FOLD,
        EPOCHS + 1,
        output_dir=fold_dir / "train",
        overrides={**QUICK, "vae_epochs": VAE_EPOCHS, "ckpt_dir": str(trained["root"] / "resumed_models")},
    )
    # pre-training was complete: not run again; the classifier ran one more epoch from its last checkpoint
    assert vae_ckpt.stat().st_mtime_ns == before
    assert [p.name for p in (fold_dir / "train" / "checkpoints" / "classifier").iterdir()] == [
        f"checkpoint_epoch={EPOCHS + 1}.pt"
    ]


def test_inference_on_a_phantom_and_the_real_ct(trained, real_case, tmp_path):
    image = trained["cohort"] / "images" / "phantom_003.nii.gz"
    mask = trained["cohort"] / "labels" / "phantom_003.nii.gz"
    result = infer_patches(image, mask, tmp_path / "p3.nii.gz", model_path=trained["vae_model"], device="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "p3.nii.gz",
        "p3_tumor_coordinates.json",
        "p3_uncertainty.nii.gz",
    ]
    assert result["patches"] > 100
    # the real CT with its 3D-IRCADb liver mask (0/255, read in place): maps on its 512 x 512 x 119 grid
    ct = real_case / "nifti" / "ct.nii.gz"
    unet_model = trained["unet"]["model"]
    infer_patches(
        ct, real_case / "nifti" / "liver.nii.gz", tmp_path / "real.nii.gz", bundle=UNET_BUNDLE, model_path=unet_model
    )
    seg, ref = nib.load(str(tmp_path / "real.nii.gz")), nib.load(str(ct))
    assert seg.shape == ref.shape == (512, 512, 119) and np.allclose(seg.affine, ref.affine, atol=1e-4)
    prob = np.asarray(nib.load(str(tmp_path / "real_tumor_probability.nii.gz")).dataobj)
    liver = np.asarray(nib.load(str(real_case / "nifti" / "liver.nii.gz")).dataobj) > 0
    # masked to the liver: nothing beyond its bounding box widened by the interpolation from the 3 mm grid
    lo, hi = np.argwhere(liver).min(axis=0), np.argwhere(liver).max(axis=0)
    found = np.argwhere(prob > 0.01)
    assert len(found) and (found.min(axis=0) >= lo - [5, 5, 1]).all() and (found.max(axis=0) <= hi + [5, 5, 1]).all()


def test_training_record_of_a_leave_one_patient_out_run(trained):
    """`livervae record-training` for a patch bundle names the held-out patient, not a datalist fold."""
    from livervae.training_record import training_record

    run = trained["vae_fold"] / "train"
    record = training_record(
        run / "classifier", trained["cohort"], FOLD, "cv", "c0ffee", None, run / "checkpoints" / "classifier", True
    )
    assert record["held_out_patient"] == trained["vae_summary"]["folds"][str(FOLD)]["test_patient"] == "phantom_001"
    assert record["training_cases"] == ["phantom_000", "phantom_002", "phantom_003", "phantom_004"]
    assert "validation_cases" not in record and record["key_metric"].startswith("val_")
    assert 1 <= record["best_epoch"] <= record["epochs"] <= record["max_epochs"]


def test_unet_tversky_loss_penalises_missed_tumor_more_than_false_alarm():
    # Small tumours: the baseline study weighs misses (0.7) above false alarms (0.3). In MONAI's TverskyLoss alpha
    # weighs false positives, so a prediction that misses k tumour pixels must cost more than one adding k.
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle_root(UNET_BUNDLE) / "configs" / "train.json"))
    parser["network"] = "$None"  # only the loss is needed; nothing reads the data set
    loss = parser.get_parsed_content("train#loss", lazy=False)
    label = torch.zeros(1, 1, 8, 8)
    label[..., 2:6, 2:6] = 1  # 16 tumour pixels
    missed, extra = label.clone(), label.clone()
    missed[..., 2:4, 2:6] = 0  # 8 false negatives
    extra[..., 6:8, 2:6] = 1  # 8 false positives

    def as_logits(mask):
        return torch.cat([(1 - mask) * 20 - 10, mask * 20 - 10], dim=1)

    assert float(loss(as_logits(missed), label)) > float(loss(as_logits(extra), label)) + 0.05
