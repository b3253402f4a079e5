import json
import os
import subprocess
import sys

import pytest

from livervae.demo import run_demo


def test_demo_prepares_the_real_case_and_phantoms(tmp_path, real_case, capsys):
    timings = run_demo(tmp_path / "demo", n_phantoms=2, train_models=False)
    printed = capsys.readouterr().out
    assert "3dircadb1_17" in printed and "phantom_001" in printed
    real = json.loads((tmp_path / "demo" / "real" / "summary.json").read_text())["cases"]["3dircadb1_17"]
    assert real["label_voxels"]["liver"] == 1_920_507 and real["lesion_count"] == 2
    overlays = sorted(p.name for p in (tmp_path / "demo" / "overlays").iterdir())
    assert overlays == ["3dircadb1_17.png", "phantom_000.png", "phantom_001.png"]
    assert timings["real_case_preprocess_s"] > 0


@pytest.mark.slow
def test_demo_command_end_to_end(tmp_path, real_case):
    script = os.path.join(os.path.dirname(sys.executable), "livervae")
    result = subprocess.run([script, "demo", "--out", str(tmp_path / "demo")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "real case prepared in" in result.stdout and "8 phantoms" in result.stdout
    assert "real CT (3D-IRCADb-01 patient 17" in result.stdout and "held-out phantoms" in result.stdout
    report = json.loads((tmp_path / "demo" / "real_prediction" / "metrics" / "summary.json").read_text())
    assert report["summary"]["cases"] == 1 and 0.0 <= report["summary"]["liver_dice_mean"] <= 1.0
    assert (tmp_path / "demo" / "real_prediction" / "3dircadb1_17_seg.png").is_file()
