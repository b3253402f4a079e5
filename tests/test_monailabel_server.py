"""MONAI Label drop-in, end to end over HTTP: start the server offline on the app `make monailabel` builds, list the
bundles, segment the shipped real CT, train one epoch on the studies folder, stop the server.

Needs the MONAI Label environment: run with `make test-monailabel` (it builds `.venv-monailabel`, trains the
bundles briefly if they have no model, and sets LIVERVAE_MONAILABEL_VENV). Outside that target the tests are
skipped; with the variable set they fail when the environment is broken. Timings are printed and written to
`runs/monailabel/test-timings.json`.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from livervae.monailabel_app import REAL_STUDY, prepare_studies, server_command
from livervae.paths import repo_root

pytestmark = [pytest.mark.monailabel, pytest.mark.timeout(3600)]

VENV_VARIABLE = "LIVERVAE_MONAILABEL_VENV"
TUMOR = "liver_tumor_ct_segmentation"
LIVER = "liver_ct_segmentation"
START_TIMEOUT_S = 600
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def venv() -> Path:
    value = os.environ.get(VENV_VARIABLE)
    if not value:
        pytest.skip(f"MONAI Label tests run with `make test-monailabel` ({VENV_VARIABLE} not set)")
    path = Path(value)
    if not (path / "bin" / "monailabel").is_file():
        pytest.fail(f"{path}: no monailabel launcher; run `make monailabel-install`")
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(url: str, data: bytes | None = None, headers: dict | None = None, timeout: float = 1800) -> bytes:
    request = urllib.request.Request(
        url, data=data, headers=headers or {}, method="POST" if data is not None else "GET"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


@pytest.fixture(scope="module")
def server(venv, real_case, tmp_path_factory):
    """The server on a free loopback port, over a fresh app (models copied, so training leaves the project's
    bundles alone) and the default studies folder; stopped (process group) afterwards."""
    root = tmp_path_factory.mktemp("monailabel")
    studies = prepare_studies(root / "studies")
    app = root / "app"
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "livervae.monailabel_app", "app", "--app", str(app), "--copy-models"],
        check=True,
    )
    port = _free_port()
    command, environment = server_command(app, studies, "127.0.0.1", port, (TUMOR, LIVER), prefix=venv)
    log_path = root / "server.log"
    with open(log_path, "w") as log:
        start = time.perf_counter()
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=environment, start_new_session=True, cwd=root
        )
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"server exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                info = json.loads(_request(f"{base}/info/", timeout=10))
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.perf_counter() - start > START_TIMEOUT_S:
                    pytest.fail(f"server not ready after {START_TIMEOUT_S} s:\n{log_path.read_text()[-4000:]}")
                time.sleep(1)
        TIMINGS["server_start_s"] = round(time.perf_counter() - start, 1)
        yield {"base": base, "info": info, "app": app, "studies": studies, "log": log_path}
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        out = repo_root() / "runs" / "monailabel"
        out.mkdir(parents=True, exist_ok=True)
        (out / "test-timings.json").write_text(json.dumps(TIMINGS, indent=2) + "\n")
        print(f"\nMONAI Label timings: {json.dumps(TIMINGS)}")


def test_info_lists_the_bundles_with_their_labels(server):
    info = server["info"]
    assert info["models"][TUMOR]["labels"] == {"liver": 1, "tumor": 2}
    assert info["models"][LIVER]["labels"] == {"liver": 1}
    assert info["models"][TUMOR]["type"] == "segmentation"
    assert not any(name.startswith("sam") for name in info["models"])  # offline: no SAM2
    for name in (TUMOR, LIVER):
        assert info["trainers"][name]["config"]["model_filename"] == ["model.pt"]  # no auxiliary weights listed


def test_infer_segments_the_real_ct_into_liver_and_tumor(server, real_case, tmp_path):
    query = urllib.parse.urlencode({"image": REAL_STUDY, "output": "image"})
    form = urllib.parse.urlencode({"params": json.dumps({"device": "cpu"})}).encode()
    start = time.perf_counter()
    body = _request(
        f"{server['base']}/infer/{TUMOR}?{query}",
        data=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    TIMINGS["infer_real_ct_s"] = round(time.perf_counter() - start, 1)
    path = tmp_path / "pred.nii.gz"
    path.write_bytes(body)
    prediction = nib.load(str(path))
    reference = nib.load(str(real_case / "nifti" / "ct.nii.gz"))
    label = np.asarray(prediction.dataobj)
    assert label.shape == reference.shape == (512, 512, 119)
    assert np.allclose(prediction.affine, reference.affine, atol=1e-3)
    values = set(np.unique(label).tolist())
    assert values <= {0, 1, 2} and {1, 2} <= values
    liver = np.asarray(nib.load(str(real_case / "nifti" / "liver.nii.gz")).dataobj) > 0
    dice = 2 * float(np.logical_and(label > 0, liver).sum()) / float((label > 0).sum() + liver.sum())
    TIMINGS["infer_liver_dice_vs_reference"] = round(dice, 3)
    TIMINGS["infer_voxels"] = {name: int((label == v).sum()) for v, name in ((1, "liver"), (2, "tumor"))}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_train_runs_one_epoch_on_the_studies_and_writes_a_checkpoint(server):
    bundle = server["app"] / "model" / TUMOR
    model = bundle / "models" / "model.pt"
    before = _digest(model)
    settings = torch.load(model, map_location="cpu", weights_only=True)["settings"]
    params = {"max_epochs": 1, "device": "cpu", "val_split": 0.2, "multi_gpu": False, "pretrained": True}
    start = time.perf_counter()
    _request(
        f"{server['base']}/train/{TUMOR}?run_sync=true",
        data=json.dumps(params).encode(),
        headers={"Content-Type": "application/json"},
    )
    TIMINGS["train_one_epoch_s"] = round(time.perf_counter() - start, 1)
    log = server["log"].read_text()
    assert _digest(model) != before, f"model.pt unchanged after training:\n{log[-4000:]}"
    assert (bundle / "runs" / "fold0" / "checkpoints" / "checkpoint_epoch=1.pt").is_file()
    assert sorted(p.name for p in (bundle / "models").iterdir()) == ["model.pt"]
    checkpoint = torch.load(model, map_location="cpu", weights_only=True)
    keys = set(checkpoint["model"])
    assert any(k.startswith("liver_net.") for k in keys) and any(k.startswith("tumor_net.") for k in keys)
    assert checkpoint["settings"] == settings  # fine-tuned at the settings the model was trained with
    assert "validating on the 1 training case(s)" in log  # one labelled study: no validation split
