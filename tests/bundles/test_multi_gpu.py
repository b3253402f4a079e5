"""multi_gpu_train.json really runs distributed: two CPU processes on gloo through torchrun (slow)."""

import os
import socket
import subprocess
import sys

import pytest
import torch

from livervae.bundle import LIVER_BUNDLE, PRESETS, bundle_root
from livervae.data.formats import SourceOptions
from livervae.data.preprocess import preprocess


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_ddp_training_on_two_cpu_processes(tmp_path):
    data = tmp_path / "phantoms"
    preprocess("phantom", None, data, SourceOptions(phantom_n=4, phantom_preset="small"), n_folds=2)
    configs = bundle_root(LIVER_BUNDLE) / "configs"
    cpu = PRESETS["cpu"][LIVER_BUNDLE]
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    command = [
        torchrun,
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        f"['{configs / 'train.json'}','{configs / 'multi_gpu_train.json'}']",
        "--bundle_root",
        str(configs.parent),
        "--dataset_dir",
        str(data),
        "--max_epochs",
        "2",
        "--val_interval",
        "1",
        "--pixdim",
        str(cpu["pixdim"]),
        "--patch_size",
        str(cpu["patch_size"]),
        "--init_filters",
        "8",
        "--num_workers",
        "0",
        "--output_dir",
        str(tmp_path / "run"),
        "--ckpt_dir",
        str(tmp_path / "models"),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, "\n".join(line for line in result.stderr.splitlines() if "Error" in line)[-3000:]
    assert "Epoch: 2/2" in result.stdout + result.stderr
    checkpoint = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert not any(key.startswith("module.") for key in checkpoint["model"])  # saved unwrapped from DDP
    resume = torch.load(next((tmp_path / "run" / "checkpoints").iterdir()), weights_only=True)
    # 2 training cases split over 2 ranks: one iteration per epoch on each rank
    assert resume["trainer"]["iteration"] == 2 and resume["trainer"]["max_epochs"] == 2
