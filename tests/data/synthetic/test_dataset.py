"""Generated training data: virtual datalists, cases as loaded from disk, and a cache window that moves on."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai.data import SmartCacheDataset
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

from livervae.data.formats import SourceOptions
from livervae.data.preprocess import preprocess
from livervae.data.synthetic.dataset import GenerateSyntheticCased, synthetic_config, synthetic_datalist
from livervae.data.synthetic.generator import SyntheticConfig, generate_synthetic_case, is_negative_case
from livervae.errors import InputError


def test_a_generated_case_is_the_case_the_written_dataset_holds(require_subjects, tmp_path):
    out = tmp_path / "pool"
    preprocess("phantom", None, out, SourceOptions(phantom_n=2, phantom_seed=5, phantom_preset="synthetic-pool"))
    entry = json.loads((out / "datalist.json").read_text())["training"][1]
    loaded = Compose([LoadImaged(["image", "label"], image_only=True), EnsureChannelFirstd(["image", "label"])])(
        {"image": str(out / entry["image"]), "label": str(out / entry["label"])}
    )
    named = synthetic_datalist("synthetic-pool", 5, 1, start=1)[0]
    generated = GenerateSyntheticCased()(named)
    for key in ("image", "label"):
        assert generated[key].shape == loaded[key].shape and generated[key].dtype == loaded[key].dtype
        assert torch.equal(generated[key].as_tensor(), loaded[key].as_tensor())
        # The file stores the affine as float32: equal to within its rounding.
        assert torch.allclose(generated[key].affine, loaded[key].affine, atol=1e-4, rtol=0)
    assert generated["severity"] == entry["severity"]
    assert generated["image"].meta["filename_or_obj"] == "synthetic:synthetic-pool:seed=5:index=1"


def test_the_datalist_names_cases_without_generating_them_and_can_skip_negatives(require_subjects):
    config = synthetic_config("synthetic-train")
    every = synthetic_datalist("synthetic-train", 7, 60)
    assert [e["synthetic_index"] for e in every] == list(range(60))
    negatives = [e["synthetic_index"] for e in every if is_negative_case(e["synthetic_index"], 7, config)]
    assert 0 < len(negatives) < 20  # 8 % of the cases
    positives = synthetic_datalist("synthetic-train", 7, 60, negatives=False)
    indices = [e["synthetic_index"] for e in positives]
    assert len(indices) == 60 and not set(indices) & set(negatives) and indices == sorted(indices)
    assert indices == [k for k in range(indices[-1] + 1) if not is_negative_case(k, 7, config)]
    # The prediction is the generator's own first anatomy draw.
    assert generate_synthetic_case(negatives[0], 7, config)[2].no_liver
    assert not synthetic_config("synthetic-pool").no_liver_fraction
    assert synthetic_datalist("synthetic-pool", 7, 3, start=10, negatives=False)[0]["case_id"] == (
        "synthetic-pool_7_000010"
    )


def test_the_cache_window_takes_new_cases_every_epoch(require_subjects):
    dataset = SmartCacheDataset(
        data=synthetic_datalist("synthetic-pool", 9, 3),
        transform=GenerateSyntheticCased(),
        cache_num=2,
        replace_rate=0.5,
        num_init_workers=1,
        num_replace_workers=1,
        shuffle=False,
        progress=False,
    )

    def seen() -> list[int]:
        return sorted(int(dataset[i]["synthetic_index"]) for i in range(len(dataset)))

    dataset.start()
    try:
        first = seen()
        dataset.update_cache()
        second = seen()
    finally:
        dataset.shutdown()
    assert len(dataset) == 2 and first == [0, 1] and second == [1, 2]
    image = dataset[1]["image"]
    assert image.shape[0] == 1 and image.meta["filename_or_obj"].endswith("index=2")
    assert float(image.min()) >= -1024 and np.isfinite(image.numpy()).all()


def test_bad_names_and_entries_are_refused():
    with pytest.raises(InputError, match="synthetic preset must be one of"):
        synthetic_datalist("parametric", 0, 2)
    with pytest.raises(InputError, match="seed"):
        synthetic_datalist("synthetic-pool", -1, 2)
    with pytest.raises(InputError, match="count"):
        synthetic_datalist("synthetic-pool", 0, 1.5)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="lacks synthetic_seed, synthetic_index"):
        GenerateSyntheticCased()({"case_id": "x", "synthetic_preset": "synthetic-pool"})
    with pytest.raises(ValueError, match="an image and a label key"):
        GenerateSyntheticCased(keys=["image"])
    assert isinstance(synthetic_config("synthetic"), SyntheticConfig)
