import json
import os
import subprocess
import sys

import pytest

from livervae.bundle import TUMOR_BUNDLE, recorded_metrics
from livervae.demo import run_demo, shipped_model
from livervae.errors import InputError
from livervae.paths import repo_root


def test_demo_with_the_shipped_weights_prepares_both_cohorts_and_prints_the_recorded_real_ct_dice(
    tmp_path, real_case, capsys
):
    timings = run_demo(tmp_path / "demo", n_phantoms=2)
    printed = capsys.readouterr().out
    # The preparation: the real case's label map as 3D-IRCADb gives it, both cohorts summarised, input overlays.
    assert "3dircadb1_17" in printed and "synthetic_0001" in printed
    real = json.loads((tmp_path / "demo" / "real" / "summary.json").read_text())["cases"]["3dircadb1_17"]
    assert real["label_voxels"]["liver"] == 1_920_507 and real["lesion_count"] == 2
    overlays = sorted(p.name for p in (tmp_path / "demo" / "overlays").iterdir())
    assert overlays == ["3dircadb1_17.png", "synthetic_0000.png", "synthetic_0001.png"]
    assert timings["real_case_preprocess_s"] > 0 and timings["real_case_inference_s"] > 0
    # The prediction: the shipped weights reproduce the real-CT numbers their metadata records.
    metadata = json.loads((repo_root() / "bundles" / TUMOR_BUNDLE / "configs" / "metadata.json").read_text())
    recorded = recorded_metrics(metadata, "real_ct_3dircadb1_17")
    assert f"liver Dice {recorded['liver_dice_mean']:.3f}, tumour Dice {recorded['tumor_dice_mean']:.3f}" in printed
    assert f"model: {shipped_model()}" in printed and "unseen synthetic CT (shipped weights" in printed
    report = json.loads((tmp_path / "demo" / "real_prediction" / "metrics" / "summary.json").read_text())
    assert report["summary"]["liver_dice_mean"] == pytest.approx(recorded["liver_dice_mean"], abs=5e-5)
    assert (tmp_path / "demo" / "real_prediction" / "metrics" / "3dircadb1_17_vs_reference.png").is_file()
    assert not (tmp_path / "demo" / "runs").exists()  # nothing was trained


def test_demo_prepare_mode_stops_before_any_model_runs(tmp_path, monkeypatch, capsys):
    """The preparation itself is the shipped-weights test's; here only that "prepare" neither trains nor predicts."""
    import livervae.demo as demo

    def refuse(*args, **kwargs):
        raise AssertionError("prepare mode ran a model")

    timings = {"real_case_preprocess_s": 1.0, "phantom_cohort_s": 2.0}
    monkeypatch.setattr(demo, "prepare", lambda out, n: dict(timings))
    monkeypatch.setattr(demo, "_overlays", lambda *args, **kwargs: [])
    for name in ("train_both", "evaluate", "score_real_case"):
        monkeypatch.setattr(demo, name, refuse)
    result = run_demo(tmp_path / "demo", n_phantoms=2, mode="prepare")
    assert result["real_case_preprocess_s"] == 1.0 and "total_s" in result
    assert "model:" not in capsys.readouterr().out
    assert not (tmp_path / "demo" / "real_prediction").exists()


def test_demo_refuses_an_unknown_mode(tmp_path):
    with pytest.raises(InputError, match="unknown demo mode"):
        run_demo(tmp_path / "demo", mode="fast")
    assert not (tmp_path / "demo").exists()


@pytest.mark.slow
def test_demo_command_trains_briefly_end_to_end(tmp_path, real_case):
    script = os.path.join(os.path.dirname(sys.executable), "livervae")
    result = subprocess.run(
        [script, "demo", "--train", "--out", str(tmp_path / "demo")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "real case prepared in" in result.stdout and "8 synthetic CTs" in result.stdout
    assert "real CT (3D-IRCADb-01 patient 17" in result.stdout and "held-out synthetic CT (fold 0" in result.stdout
    trained = tmp_path / "demo" / "models" / "tumor" / "model.pt"
    assert f"model: {trained}" in result.stdout and trained.is_file()
    assert (tmp_path / "demo" / "real_prediction" / "3dircadb1_17_seg.png").is_file()
