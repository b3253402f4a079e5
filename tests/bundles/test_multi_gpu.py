"""multi_gpu_train.json really runs distributed: two CPU processes on gloo through torchrun (slow)."""

import os
import socket
import subprocess
import sys

import pytest
import torch

from livervae.bundle import LIVER_BUNDLE, TUMOR_BUNDLE, BundlePredictor, bundle_root
from livervae.data.formats import SourceOptions
from livervae.data.preprocess import preprocess
from livervae.io.checkpoint import read_checkpoint
from livervae.io.nifti import load_nifti


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(bundle: str, data, tmp_path, extra: list[str], overlays=()) -> subprocess.CompletedProcess:
    configs = bundle_root(bundle) / "configs"
    files = ",".join(f"'{configs / name}'" for name in ("train.json", "multi_gpu_train.json", *overlays))
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    command = [
        torchrun,
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        f"[{files}]",
        "--bundle_root",
        str(configs.parent),
        "--dataset_dir",
        str(data),
        "--max_epochs",
        "2",
        "--val_interval",
        "1",
        "--num_workers",
        "0",
        "--output_dir",
        str(tmp_path / "run"),
        "--ckpt_dir",
        str(tmp_path / "models"),
        *extra,
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, "\n".join(line for line in result.stderr.splitlines() if "Error" in line)[-3000:]
    assert "Epoch: 2/2" in result.stdout + result.stderr
    return result


@pytest.mark.slow
def test_ddp_fine_tuning_of_the_two_stage_bundle_saves_a_model_that_loads_strictly(tmp_path, real_case):
    """Stage 2 under DDP, from the shipped weights (the strict pretrained loader) to a model saved without
    `tumor_net.module.*` keys that `BundlePredictor` loads strictly (issue 17, defect 1)."""
    data = tmp_path / "phantoms"
    preprocess("phantom", None, data, SourceOptions(phantom_n=4, phantom_preset="small"), n_folds=2)
    shipped = bundle_root(TUMOR_BUNDLE) / "models" / "model.pt"
    settings = torch.load(shipped, weights_only=True)["settings"]
    extra = [f"--{key}={str(value).replace(' ', '')}" for key, value in settings.items()]
    extra += [
        f"--pretrained_model={shipped}",
        f"--liver_model_path={bundle_root(LIVER_BUNDLE) / 'models' / 'model.pt'}",
    ]
    result = _torchrun(TUMOR_BUNDLE, data, tmp_path, extra)
    assert "Missing key" not in result.stderr and "Unexpected key" not in result.stderr
    model = tmp_path / "models" / "model.pt"
    keys = list(torch.load(model, weights_only=True)["model"])
    assert not any(".module." in key or key.startswith("module.") for key in keys)
    assert sorted(keys) == sorted(read_checkpoint(shipped)[0])  # the shipped 0.2 keys, in today's spelling
    predictor = BundlePredictor(TUMOR_BUNDLE, model_path=model, device="cpu")  # strict load
    ct = real_case / "nifti" / "ct.nii.gz"
    assert predictor.predict_volume(ct, load_nifti(ct)).array.shape == load_nifti(ct).shape


@pytest.mark.slow
def test_ddp_training_on_two_cpu_processes(tmp_path):
    data = tmp_path / "phantoms"
    preprocess("phantom", None, data, SourceOptions(phantom_n=4, phantom_preset="small"), n_folds=2)
    _torchrun(LIVER_BUNDLE, data, tmp_path, [], overlays=["cpu.json"])  # the CPU preset as a config overlay
    checkpoint = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert checkpoint["settings"]["pixdim"] == [4.0, 4.0, 4.0] and checkpoint["settings"]["init_filters"] == 8
    assert not any(key.startswith("module.") for key in checkpoint["model"])  # saved unwrapped from DDP
    resume = torch.load(next((tmp_path / "run" / "checkpoints").iterdir()), weights_only=True)
    # 2 training cases split over 2 ranks: one iteration per epoch on each rank
    assert resume["trainer"]["iteration"] == 2 and resume["trainer"]["max_epochs"] == 2
