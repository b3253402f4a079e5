"""Shared fixtures: the real CT data folder, small phantoms, and DICOM series written from them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from livervae.io.volume import Volume
from livervae.paths import DATA_DIR_ENV, shared_data_dir


def pytest_report_header(config: pytest.Config) -> str:
    return f"livervae shared data: {shared_data_dir()} ({DATA_DIR_ENV} overrides)"


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, one compute thread per worker (and its subprocesses): the workers already fill the
    cores, and torch's default of one thread per core in each would oversubscribe them."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        os.environ["MKL_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-CT folder; its absence fails the run in CI and skips the test elsewhere."""
    path = shared_data_dir()
    if not (path / "3dircadb1_17").is_dir():
        message = f"shared real CT data not found at {path}; set {DATA_DIR_ENV}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def real_case(shared_data: Path) -> Path:
    return shared_data / "3dircadb1_17"


@pytest.fixture(scope="session")
def dcmqi(shared_data: Path) -> Path:
    return shared_data / "dcmqi_ct3slice_liver_seg"


@pytest.fixture(scope="session")
def small_phantom() -> tuple[Volume, Volume, object]:
    """One small synthetic case: (image, label, truth)."""
    from livervae.data.phantom import PhantomConfig, generate_case

    return generate_case(0, 0, PhantomConfig.small())


def small_ct_volume() -> Volume:
    """A tiny CT-like volume (air, soft tissue, bone) with an LPS affine and anisotropic spacing."""
    rng = np.random.default_rng(7)
    array = np.full((24, 20, 8), -1000, dtype=np.int16)
    array[4:20, 3:17, :] = rng.integers(20, 80, size=(16, 14, 8))
    array[10:13, 12:15, :] = 700
    affine = np.diag([-0.9, -0.9, 2.5, 1.0])
    affine[:3, 3] = [120.0, 80.0, -40.0]
    return Volume(array=array, affine=affine, source="synthetic")


def small_labelled_ct(ct: Volume) -> tuple[Volume, Volume]:
    """`ct` with a block liver (label 1) holding two separate lesions (label 2)."""
    label = np.zeros(ct.shape, dtype=np.uint8)
    label[5:18, 4:16, 1:7] = 1
    label[6:9, 5:8, 2:4] = 2
    label[13:16, 11:14, 4:6] = 2
    return ct, Volume(label, ct.affine.copy(), "label")


@pytest.fixture()
def ct_volume() -> Volume:
    """A tiny CT-like volume (air, soft tissue, bone) with an LPS affine and anisotropic spacing."""
    return small_ct_volume()


# Helpers shared by several test modules live next to this file; importlib import mode needs the path.
import sys  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture()
def labelled_ct(ct_volume) -> tuple[Volume, Volume]:
    """`ct_volume` with a block liver (label 1) holding two separate lesions (label 2)."""
    return small_labelled_ct(ct_volume)


QUICK_TRAINING = {"val_interval": 1, "num_samples": 1, "cache_rate": 0.0}


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A 4-case small-phantom dataset and both stages trained for one epoch into a temporary folder.

    Shared by the bundle, ablation and inference tests (trained once per session).
    """
    from livervae.bundle import LIVER_BUNDLE, TUMOR_BUNDLE, train
    from livervae.data.formats import SourceOptions
    from livervae.data.preprocess import preprocess

    root = tmp_path_factory.mktemp("bundles")
    data = root / "phantoms"
    preprocess("phantom", None, data, SourceOptions(phantom_n=4, phantom_preset="small"), n_folds=2)
    liver = train(
        LIVER_BUNDLE,
        data,
        epochs=1,
        output_dir=root / "liver",
        preset="cpu",
        overrides={**QUICK_TRAINING, "ckpt_dir": str(root / "liver_models")},
    )
    tumour = train(
        TUMOR_BUNDLE,
        data,
        epochs=1,
        output_dir=root / "tumor",
        preset="cpu",
        overrides={**QUICK_TRAINING, "ckpt_dir": str(root / "tumor_models"), "liver_model_path": str(liver)},
    )
    return {"root": root, "data": data, "liver": liver, "tumor": tumour}
