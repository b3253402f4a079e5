"""The weights that ship with the two-stage bundles: loadable safely, consistent, and still segmenting.

They come from the CPU training run documented in the bundle READMEs (phantom cohort seed 1). The scored
phantom is from another cohort (seed 2026), so the model never saw it.
"""

from __future__ import annotations

import pytest
import torch

from livervae.bundle import LIVER_BUNDLE, PRESETS, TUMOUR_BUNDLE, bundle_root, evaluate
from livervae.data.formats import SourceOptions
from livervae.data.preprocess import preprocess

ZOO_LIMIT_BYTES = 25 * 1024 * 1024


def _shipped(name):
    return bundle_root(name) / "models" / "model.pt"


@pytest.mark.parametrize("name", [LIVER_BUNDLE, TUMOUR_BUNDLE])
def test_shipped_weights_fit_the_zoo_limit_and_record_their_settings(name):
    path = _shipped(name)
    assert path.is_file() and path.stat().st_size <= ZOO_LIMIT_BYTES
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    cpu_preset = PRESETS["cpu"][name]
    assert checkpoint["settings"]["pixdim"] == cpu_preset["pixdim"]
    assert checkpoint["settings"]["init_filters"] == cpu_preset["init_filters"]


def test_the_two_stage_weights_embed_the_shipped_liver_model():
    liver = torch.load(_shipped(LIVER_BUNDLE), map_location="cpu", weights_only=True)
    chain = torch.load(_shipped(TUMOUR_BUNDLE), map_location="cpu", weights_only=True)
    assert {f"liver_net.{key}" for key in liver["model"]} <= set(chain["model"])
    assert all(torch.equal(value, chain["model"][f"liver_net.{key}"]) for key, value in liver["model"].items())
    for key, value in liver["settings"].items():
        assert chain["settings"][f"liver_{key}"] == value


def test_the_shipped_chain_segments_an_unseen_phantom(tmp_path):
    data = tmp_path / "phantom"
    preprocess("phantom", None, data, SourceOptions(phantom_n=1, phantom_seed=2026), n_folds=1)
    summary = evaluate(TUMOUR_BUNDLE, data, split="all", output_dir=tmp_path / "eval", device="cpu")["summary"]
    # Measured when the weights were shipped: liver Dice 0.952, tumour Dice 0.599 on this case.
    assert summary["liver_dice_mean"] > 0.9
    assert summary["tumour_dice_mean"] > 0.4 and summary["lesions"]["detected"] >= 1
