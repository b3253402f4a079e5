import json
import shutil

import pytest

from livervae.bundle import (
    BUNDLES,
    LIVER_BUNDLE,
    bundle_root,
    file_sha256,
    preset_configs,
    preset_overrides,
    record_eval_metrics,
    recorded_metrics,
)
from livervae.errors import InputError
from livervae.io.atomic import write_json_atomic


def test_eval_metrics_stay_flat_numbers_one_prefix_per_evaluation_set(tmp_path):
    """The zoo's schema wants `eval_metrics` as name -> number; each evaluation set gets its own prefix."""
    bundle = tmp_path / LIVER_BUNDLE
    shutil.copytree(bundle_root(LIVER_BUNDLE), bundle, ignore=shutil.ignore_patterns("models"))
    (bundle / "models").mkdir()
    (bundle / "models" / "model.pt").write_bytes(b"weights")
    metadata_path = bundle / "configs" / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["eval_metrics"], metadata["eval_data"] = {"liver_dice_mean": 0.5}, "an older single record"
    write_json_atomic(metadata_path, metadata, indent=4)
    (tmp_path / "ds").mkdir()
    summary = {"cases": 2, "liver_dice_mean": 0.91234, "tumor_dice_mean": float("nan"), "lesions": {"detected": 3}}
    record_eval_metrics(str(bundle), summary, tmp_path / "ds", 0, "all", "phantoms", allow_external=True)
    record_eval_metrics(str(bundle), {**summary, "liver_dice_mean": 0.8}, tmp_path / "ds", 0, "all", "real", None, True)
    record_eval_metrics(str(bundle), {**summary, "liver_dice_mean": 0.7}, tmp_path / "ds", 0, "all", "real", None, True)
    stored = json.loads(metadata_path.read_text())
    assert stored["eval_metrics"] == {
        "phantoms_liver_dice_mean": 0.9123,
        "phantoms_lesion_detected": 3.0,
        "real_liver_dice_mean": 0.7,
        "real_lesion_detected": 3.0,
    }  # the older record and the NaN are gone, the second "real" replaced the first
    assert recorded_metrics(stored, "real") == {"liver_dice_mean": 0.7, "lesion_detected": 3.0}
    assert stored["eval_data"]["phantoms"] == {
        "data": "ds, fold 0, split all, 2 case(s)",
        "model_sha256": file_sha256(bundle / "models" / "model.pt"),
    }


def test_recorded_lesion_metrics_are_lits_with_the_any_overlap_ones_named_apart(tmp_path):
    bundle = tmp_path / LIVER_BUNDLE
    shutil.copytree(bundle_root(LIVER_BUNDLE), bundle, ignore=shutil.ignore_patterns("models"))
    (tmp_path / "ds").mkdir()
    lits = {"recall": 0.25, "precision": 0.5, "detected": 1, "reference_lesions": 4, "false_positives": 1}
    summary = {"cases": 1, "lesions": lits, "lesions_any_overlap": {"recall": 0.75, "precision": 1.0, "detected": 3}}
    record_eval_metrics(str(bundle), summary, tmp_path / "ds", 0, "all", "set", allow_external=True)
    assert recorded_metrics(json.loads((bundle / "configs" / "metadata.json").read_text()), "set") == {
        "lesion_recall": 0.25,
        "lesion_precision": 0.5,
        "lesion_detected": 1.0,
        "lesion_reference_lesions": 4.0,
        "lesion_any_overlap_recall": 0.75,
        "lesion_any_overlap_precision": 1.0,
    }


@pytest.mark.parametrize("name", BUNDLES)
def test_cpu_preset_is_an_overlay_of_keys_the_training_config_has(name):
    from monai.bundle import ConfigParser

    configs = bundle_root(name) / "configs"
    assert preset_configs(name, "default") == [] and preset_configs(name, "cpu") == ["cpu.json"]
    overlay = json.loads((configs / "cpu.json").read_text())
    train_config = json.loads((configs / "train.json").read_text())
    assert set(overlay) <= set(train_config)  # a misspelt key would be added and silently ignored
    parser = ConfigParser()
    parser.read_config([str(configs / "train.json"), str(configs / "cpu.json")])
    assert {key: parser[key] for key in overlay} == overlay
    assert preset_overrides(name, "cpu") == overlay


def test_an_unknown_preset_names_the_missing_overlay():
    with pytest.raises(InputError, match="gpu8.json: no preset 'gpu8'"):
        preset_configs(LIVER_BUNDLE, "gpu8")


def test_metrics_recorded_with_the_old_spelling_read_in_the_new_one():
    metadata = {"eval_metrics": {"real_ct_tumour_dice_mean": 0.2, "real_ct_liver_dice_mean": 0.8, "other_x": 1.0}}
    assert recorded_metrics(metadata, "real_ct") == {"tumor_dice_mean": 0.2, "liver_dice_mean": 0.8}
