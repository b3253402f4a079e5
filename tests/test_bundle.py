import json
import shutil

from livervae.bundle import LIVER_BUNDLE, bundle_root, file_sha256, record_eval_metrics, recorded_metrics
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
    summary = {"cases": 2, "liver_dice_mean": 0.91234, "tumour_dice_mean": float("nan"), "lesions": {"detected": 3}}
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
