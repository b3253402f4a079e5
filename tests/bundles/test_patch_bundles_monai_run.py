"""The patch bundles train and infer through `python -m monai.bundle run` alone (slow: fresh processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nibabel as nib
import pytest

from livervae.bundle import PATCH_VAE_BUNDLE, UNET_BUNDLE, bundle_root
from livervae.paths import repo_root

sys.path.insert(0, str(repo_root() / "tests"))
from patch_cohort import QUICK, QUICK_UNET, write_cohort  # noqa: E402


def _run(root, configs, **settings):
    files = [str(root / "configs" / c) for c in configs]
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", repr(files), "--bundle_root", str(root)]
    for key, value in settings.items():
        command += [f"--{key}", json.dumps(value) if not isinstance(value, str) else value]
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("name", [PATCH_VAE_BUNDLE, UNET_BUNDLE])
def test_monai_bundle_run_trains_and_infers(name, tmp_path):
    cohort = write_cohort(tmp_path / "cohort", n=4)
    root = bundle_root(name)
    quick = QUICK if name == PATCH_VAE_BUNDLE else QUICK_UNET
    models = tmp_path / "models"
    epochs = {"vae_epochs": 1, "max_epochs": 2} if name == PATCH_VAE_BUNDLE else {"max_epochs": 2}
    _run(
        root,
        ["train.json"],
        dataset_dir=str(cohort),
        fold=1,
        output_dir=str(tmp_path / "train"),
        ckpt_dir=str(models),
        **quick,
        **epochs,
    )
    assert (models / "model.pt").is_file()
    settings = {k: v for k, v in quick.items() if k not in ("batch_size", "cache_rate")}
    out = tmp_path / "eval"
    load = f"$'{models / 'model.pt'}'"
    _run(
        root,
        ["inference.json", "evaluate.json"],
        dataset_dir=str(cohort),
        fold=1,
        output_dir=str(out),
        **settings,
        **{"handlers#0#load_path": load},
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cases"] == 1 and summary["patches"] > 0
    produced = sorted(p.name for p in out.glob("*.nii.gz"))
    source = nib.load(str(cohort / "images" / "phantom_001.nii.gz"))
    assert produced and all(nib.load(str(out / p)).shape == source.shape for p in produced)
