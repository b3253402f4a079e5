"""The bundle contract, end to end on the CPU: train both stages briefly on phantoms, then check the MONAI
bundle properties, metadata, network in/out, evaluation, and inference on phantoms and the shipped real CT."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow, verify_metadata, verify_net_in_out

from livervae.bundle import LIVER_BUNDLE, TUMOR_BUNDLE, BundlePredictor, bundle_root, evaluate, train
from livervae.errors import InputError
from livervae.infer import infer
from livervae.paths import repo_root


def _workflow(name, config, workflow_type, **override):
    root = bundle_root(name)
    workflow = ConfigWorkflow(
        config_file=str(root / "configs" / config),
        meta_file=str(root / "configs" / "metadata.json"),
        logging_file=False,
        workflow_type=workflow_type,
        bundle_root=str(root),
        **override,
    )
    workflow.initialize()
    return workflow


def test_checkpoints_hold_weights_and_settings(trained):
    liver = torch.load(trained["liver"], weights_only=True)
    tumour = torch.load(trained["tumor"], weights_only=True)
    assert liver["settings"]["pixdim"] == [4.0, 4.0, 4.0] and liver["settings"]["init_filters"] == 8
    keys = set(tumour["model"])
    assert any(k.startswith("liver_net.") for k in keys) and any(k.startswith("tumor_net.") for k in keys)
    assert tumour["settings"]["liver_pixdim"] == liver["settings"]["pixdim"]


@pytest.mark.parametrize("name", [LIVER_BUNDLE, TUMOR_BUNDLE])
def test_required_properties_are_present(trained, name, tmp_path):
    overrides = {"dataset_dir": str(trained["data"]), "output_dir": str(tmp_path), "ckpt_dir": str(tmp_path)}
    if name == TUMOR_BUNDLE:
        overrides.update(
            liver_model_path=str(trained["liver"]),
            liver_init_filters=8,
            liver_pixdim=[4.0, 4.0, 4.0],
            liver_patch_size=[64, 64, 48],
        )
    assert _workflow(name, "train.json", "train", **overrides).check_properties() == []
    assert _workflow(name, "inference.json", "infer", dataset_dir=str(trained["data"])).check_properties() == []


@pytest.mark.parametrize("name", [LIVER_BUNDLE, TUMOR_BUNDLE])
def test_metadata_verifies_offline_and_network_in_out(name):
    configs = bundle_root(name) / "configs"
    verify_metadata(
        meta_file=str(configs / "metadata.json"), filepath=str(repo_root() / "bundles" / "metadata_schema.json")
    )
    extra = {"liver_init_filters": 8} if name == TUMOR_BUNDLE else {}
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(configs / "metadata.json"),
        config_file=str(configs / "inference.json"),
        device="cpu",
        n=2,
        any=32,
        init_filters=8,
        **extra,
    )
    metadata = json.loads((configs / "metadata.json").read_text())
    assert metadata["network_data_format"]["outputs"]["pred"]["channel_def"] == (
        {"0": "background", "1": "liver", "2": "tumor"} if name == TUMOR_BUNDLE else {"0": "background", "1": "liver"}
    )


def test_multi_gpu_config_overrides_the_training_config():
    for name in (LIVER_BUNDLE, TUMOR_BUNDLE):
        configs = bundle_root(name) / "configs"
        multi = json.loads((configs / "multi_gpu_train.json").read_text())
        train_config = json.loads((configs / "train.json").read_text())
        assert multi["network"]["_target_"] == "torch.nn.parallel.DistributedDataParallel"
        # Under DDP the network is the wrapper's module.
        steps = [step.replace("@network.module", "@network") for step in multi["initialize"]]
        assert all(step in steps for step in train_config["initialize"])


def test_round_trip_on_a_phantom_keeps_the_input_grid(trained, tmp_path):
    predictor = BundlePredictor(
        TUMOR_BUNDLE, model_path=trained["tumor"], device="cpu", overrides={"active_contour": False}
    )
    source = trained["data"] / "images" / "phantom_001.nii.gz"
    summary = infer(source, tmp_path / "pred.nii.gz", predictor=predictor)
    out, ref = nib.load(str(tmp_path / "pred.nii.gz")), nib.load(str(source))
    assert out.shape == ref.shape and np.allclose(out.affine, ref.affine) and out.get_data_dtype() == np.uint8
    assert set(np.unique(np.asarray(out.dataobj))) <= {0, 1, 2}
    assert summary["liver_ml"] > 0 and (tmp_path / "pred.png").is_file()


def test_real_ct_from_dicom_keeps_the_input_grid(trained, real_case, tmp_path):
    predictor = BundlePredictor(
        TUMOR_BUNDLE, model_path=trained["tumor"], device="cpu", overrides={"active_contour": False}
    )
    infer(real_case / "PATIENT_DICOM", tmp_path / "real.nii.gz", predictor=predictor, overlay=False)
    out, ref = nib.load(str(tmp_path / "real.nii.gz")), nib.load(str(real_case / "nifti" / "ct.nii.gz"))
    assert out.shape == ref.shape == (512, 512, 119) and np.allclose(out.affine, ref.affine, atol=1e-4)


def test_real_ct_from_dicom_to_dicom_seg(trained, real_case, tmp_path, caplog, capsys):
    import highdicom as hd
    import pydicom

    from livervae.io.dicom_seg import read_dicom_seg_labels
    from livervae.io.dicom_series import read_dicom_series

    predictor = BundlePredictor(
        TUMOR_BUNDLE, model_path=trained["tumor"], device="cpu", overrides={"active_contour": False}
    )
    with caplog.at_level("DEBUG"):
        summary = infer(real_case / "PATIENT_DICOM", tmp_path / "seg.dcm", predictor=predictor, overlay=False)
    ct = read_dicom_series(real_case / "PATIENT_DICOM")
    label = read_dicom_seg_labels(tmp_path / "seg.dcm", ct).array
    counts = {
        name: int(np.count_nonzero(label == value)) for value, name in enumerate(("background", "liver", "tumor"))
    }
    assert counts == summary["label_voxels"]  # the SEG holds exactly the prediction that was summarised
    seg = hd.seg.segread(tmp_path / "seg.dcm")
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == ct.series_uid
    assert seg.get_segment_description(1).algorithm_identification[0].AlgorithmName == "LiverVAE"
    name = str(pydicom.dcmread(ct.files[0], stop_before_pixels=True).PatientName)
    assert name and name not in caplog.text + capsys.readouterr().err


def test_evaluation_writes_the_report(trained, tmp_path):
    result = evaluate(
        TUMOR_BUNDLE,
        trained["data"],
        fold=0,
        output_dir=tmp_path,
        device="cpu",
        overrides={"model_path": str(trained["tumor"]), "active_contour": False},
    )
    summary = result["summary"]
    assert summary["cases"] == 2 and "lesions" in summary
    # Every reported Dice equals one computed here from the written label map and the dataset's reference.
    with open(tmp_path / "metrics" / "metrics.csv", newline="") as handle:
        rows = {row["case_id"]: row for row in csv.DictReader(handle)}
    assert len(rows) == 2
    for case_id, row in rows.items():
        predicted = np.asarray(nib.load(str(tmp_path / f"{case_id}_seg.nii.gz")).dataobj)
        reference = np.asarray(nib.load(str(Path(trained["data"]) / "labels" / f"{case_id}.nii.gz")).dataobj)
        for key, labels in (("liver_dice", (1, 2)), ("tumor_dice", (2,))):
            a, b = np.isin(predicted, labels), np.isin(reference, labels)
            expected = 2 * (a & b).sum() / (a.sum() + b.sum()) if a.sum() + b.sum() else 1.0
            assert float(row[key]) == pytest.approx(expected, abs=1e-5), (case_id, key)
    mean = np.mean([float(r["liver_dice"]) for r in rows.values()])
    assert summary["liver_dice_mean"] == pytest.approx(mean, abs=1e-5)
    assert len(list((tmp_path / "metrics" / "overlays").iterdir())) == 2


def test_bundle_evaluation_writes_the_uncertainty_maps_livervae_infer_computes(trained, tmp_path):
    """`save_uncertainty` in the tumour bundle's config: each case's P(liver), P(tumour) and uncertainty on its own
    grid, as `BundlePredictor.predict_with_uncertainty` (what `livervae infer --uncertainty` writes) gives them."""
    from livervae.bundle import BundlePredictor

    overrides = {"model_path": str(trained["tumor"]), "active_contour": False, "save_uncertainty": True}
    evaluate(TUMOR_BUNDLE, trained["data"], fold=0, output_dir=tmp_path, device="cpu", overrides=overrides)
    written = sorted(tmp_path.glob("*_uncertainty.nii.gz"))
    assert len(written) == 2
    predictor = BundlePredictor(TUMOR_BUNDLE, model_path=trained["tumor"], device="cpu")
    case_id = written[0].name[: -len("_uncertainty.nii.gz")]
    image = Path(trained["data"]) / "images" / f"{case_id}.nii.gz"
    expected = predictor.predict_with_uncertainty(image).maps
    img = nib.load(str(written[0]))
    np.testing.assert_allclose(img.affine, nib.load(str(image)).affine, atol=1e-4)
    np.testing.assert_allclose(np.moveaxis(img.get_fdata(dtype=np.float32), -1, 0), expected, atol=1e-4)


def test_only_livervae_bundles_run_by_default(tmp_path):
    with pytest.raises(InputError, match="bundle configs run code"):
        bundle_root(str(tmp_path))
    with pytest.raises(InputError, match="not a MONAI bundle folder"):
        bundle_root(str(tmp_path), allow_external=True)


def test_training_needs_a_prepared_dataset(tmp_path):
    with pytest.raises(InputError, match="no datalist.json"):
        train(LIVER_BUNDLE, tmp_path)


def test_monai_label_layout_fits_the_cpu_trained_model(trained, tmp_path):
    """MONAI Label reads inference.json as is: the generated one must build a network the checkpoint fits."""
    import shutil

    from monai.bundle import ConfigParser

    from livervae.monailabel_app import prepare_bundle

    source = tmp_path / "src" / TUMOR_BUNDLE
    shutil.copytree(bundle_root(TUMOR_BUNDLE), source, ignore=shutil.ignore_patterns("models", "runs", "eval"))
    (source / "models").mkdir()
    shutil.copy(trained["tumor"], source / "models" / "model.pt")
    destination = tmp_path / "app" / "model" / TUMOR_BUNDLE
    prepare_bundle(source, destination, copy_models=True)
    parser = ConfigParser()
    parser.read_config(str(destination / "configs" / "inference.json"))
    parser["network_def"]["dropout"] = 0.2  # as MONAI Label's epistemic scoring does
    network = parser.get_parsed_content("network_def")
    state = torch.load(trained["tumor"], weights_only=True)["model"]
    network.load_state_dict(state, strict=True)


def _one_epoch_tumour_training(trained, tmp_path, **override):
    """The tumour bundle's train.json on one training case for one epoch at the CPU sizes the `trained` models
    have, starting from the trained two-stage checkpoint unless `override` says otherwise."""
    cases = json.loads((trained["data"] / "datalist.json").read_text())["training"][:1]
    data = [{k: str(trained["data"] / case[k]) for k in ("image", "label")} for case in cases]
    settings = {
        "dataset_dir": str(trained["data"]),
        "output_dir": str(tmp_path),
        "ckpt_dir": str(tmp_path / "models"),
        "pretrained_model": str(trained["tumor"]),
        "liver_init_filters": 8,
        "liver_pixdim": [4.0, 4.0, 4.0],
        "liver_patch_size": [64, 64, 48],
        "pixdim": [2.0, 2.0, 2.0],
        "patch_size": [64, 64, 64],
        "init_filters": 8,
        "cache_rate": 0.0,
        "train#dataset#data": data,
        "validate#dataset#data": [],
        "train#trainer#max_epochs": 1,
    }
    return _workflow(TUMOR_BUNDLE, "train.json", "train", **{**settings, **override})


def test_training_fine_tunes_the_two_stage_checkpoint_and_validates_without_a_validation_split(trained, tmp_path):
    """As MONAI Label runs train.json: the tumour stage starts from the two-stage checkpoint's `tumor_net.*`, the
    liver stage from the liver bundle's (retrained) model even when the two-stage checkpoint holds an older one,
    and an empty validation list falls back to the training cases."""
    from ignite.engine import Events

    liver = torch.load(trained["liver"], weights_only=True)
    retrained = {k: v + 1.0 if v.is_floating_point() else v for k, v in liver["model"].items()}
    torch.save({"model": retrained, "settings": liver["settings"]}, tmp_path / "retrained_liver.pt")
    workflow = _one_epoch_tumour_training(trained, tmp_path, liver_model_path=str(tmp_path / "retrained_liver.pt"))
    # Whatever runs when training starts (MONAI's handlers, MONAI Label's loader) must not undo the loading.
    workflow.parser.get_parsed_content("train#trainer").fire_event(Events.STARTED)
    state = torch.load(trained["tumor"], weights_only=True)["model"]
    network = workflow.parser.get_parsed_content("network")
    assert all(torch.equal(v, state[f"tumor_net.{k}"]) for k, v in network.state_dict().items())
    chained = workflow.parser.get_parsed_content("two_stage_network")
    assert all(torch.equal(v, retrained[k]) for k, v in chained.liver_net.state_dict().items())
    assert len(workflow.parser.get_parsed_content("validate#dataloader").dataset) == 1
    handler = workflow.parser.get_parsed_content("train#handlers")[1]
    assert handler.interval == 1  # validation (and so the saved model) even for a one-epoch request


def test_training_can_start_the_tumour_stage_from_the_liver_model(trained, tmp_path):
    """`init_weights` (transfer from stage 1) takes the place of the two-stage checkpoint as the starting point."""
    from ignite.engine import Events

    liver = torch.load(trained["liver"], weights_only=True)["model"]
    workflow = _one_epoch_tumour_training(
        trained, tmp_path, init_weights=str(trained["liver"]), liver_model_path=str(trained["liver"])
    )
    workflow.parser.get_parsed_content("train#trainer").fire_event(Events.STARTED)
    network = workflow.parser.get_parsed_content("network").state_dict()
    tumour = torch.load(trained["tumor"], weights_only=True)["model"]
    for name in ("convInit.conv.weight", "down_layers.2.1.conv1.conv.weight", "up_layers.0.0.conv1.conv.weight"):
        assert torch.equal(network[name], liver[name]) and not torch.equal(network[name], tumour[f"tumor_net.{name}"])
    assert not torch.equal(network["conv_final.2.conv.weight"], liver["conv_final.2.conv.weight"])


def test_a_finished_run_is_not_retrained_over(trained, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "checkpoint_epoch=3.pt").write_bytes(b"")
    with pytest.raises(InputError, match="already finished 3 epoch"):
        train(LIVER_BUNDLE, trained["data"], epochs=3, output_dir=tmp_path, preset="cpu")
    with pytest.raises(InputError, match="already finished 3 epoch"):
        train(LIVER_BUNDLE, trained["data"], epochs=2, output_dir=tmp_path, preset="cpu")


def test_training_on_generated_cases_moves_the_cache_window_every_epoch(trained, shared_data, tmp_path):
    from monai.data import SmartCacheDataset

    from livervae.bundle import preset_configs, run_workflow

    root = bundle_root(LIVER_BUNDLE)
    workflow = run_workflow(
        root,
        ["train.json", *preset_configs(LIVER_BUNDLE, "cpu")],
        "train",
        {
            "dataset_dir": str(trained["data"]),
            "output_dir": str(tmp_path / "run"),
            "ckpt_dir": str(tmp_path / "models"),
            "pretrained_model": "",
            "max_epochs": 2,
            "synthetic_preset": "synthetic-pool",
            "synthetic_seed": 4,
            "synthetic_cache_num": 2,
            "synthetic_replace_rate": 0.5,
        },
    )
    dataset = workflow.parser.get_parsed_content("train#dataloader").dataset
    assert isinstance(dataset, SmartCacheDataset) and len(dataset) == 2
    # Two epochs, one replacement after each: the window went [0, 1] -> [1, 2] -> [2, 3].
    window = sorted(int(dataset[i][0]["synthetic_index"]) for i in range(len(dataset)))
    assert window == [2, 3]
    assert torch.load(tmp_path / "models" / "model.pt", weights_only=True)["settings"]["pixdim"] == [4.0, 4.0, 4.0]
    # Validation still ran on the dataset's own fold.
    assert any((tmp_path / "run").glob("events.out.tfevents.*"))
