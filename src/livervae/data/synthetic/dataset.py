"""Training data that does not repeat: synthetic CT generated on demand inside a MONAI pipeline.

A fixed pool of a few dozen generated cases is learnt by heart in a long CPU run. Here a training set is a virtual
datalist (`synthetic_datalist`: cases of a cohort named by index, nothing on disk), `GenerateSyntheticCased`
generates a named case exactly as `LoadImaged` + `EnsureChannelFirstd` would load it from the dataset
`livervae phantom` writes, and MONAI's `SmartCacheDataset` keeps a window of generated cases cached (the
deterministic transforms, stage 1 included, run once per case) while a background thread generates the cases that
replace part of the window every epoch (`SmartCacheHandler`). The bundles' `synthetic_preset` setting switches
their training to it; see `docs/data.md`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform

from livervae.data.clinical import compute_severity
from livervae.data.synthetic.generator import (
    SYNTHETIC_PRESETS,
    SyntheticConfig,
    generate_synthetic_case_record,
    is_negative_case,
)
from livervae.errors import InputError
from livervae.io.volume import Volume

PRESET_KEY = "synthetic_preset"
SEED_KEY = "synthetic_seed"
INDEX_KEY = "synthetic_index"


def synthetic_config(preset: str, data_dir: str | os.PathLike[str] | None = None) -> SyntheticConfig:
    """The generator configuration of a named preset, reading the anatomy from `data_dir` (default: shared data).

    Raises:
        InputError: an unknown preset.
    """
    if preset not in SYNTHETIC_PRESETS:
        raise InputError(None, f"synthetic preset must be one of {', '.join(SYNTHETIC_PRESETS)}, got {preset!r}")
    config = SYNTHETIC_PRESETS[preset]()
    if data_dir is None:
        return config
    return dataclasses.replace(config, data_dir=Path(data_dir))


def synthetic_datalist(
    preset: str,
    seed: int,
    count: int,
    start: int = 0,
    negatives: bool = True,
) -> list[dict[str, Any]]:
    """Name `count` cases of synthetic cohort `seed`, from case `start` on, without generating any.

    Args:
        preset: generator preset (`SYNTHETIC_PRESETS`).
        seed: cohort seed; keep it apart from the seeds of the cohorts that validate and test.
        count: how many cases to name.
        start: index of the first case.
        negatives: keep no-liver cases (liver training); False skips them (the tumour stage crops the liver).

    Returns:
        Entries `{"case_id", "synthetic_preset", "synthetic_seed", "synthetic_index"}` for `GenerateSyntheticCased`.
    """
    for name, value in (("seed", seed), ("count", count), ("start", start)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise InputError(None, f"synthetic datalist {name} must be a non-negative integer, got {value!r}")
    config = synthetic_config(preset)
    skip_negatives = not negatives and config.no_liver_fraction > 0
    entries: list[dict[str, Any]] = []
    index = int(start)
    while len(entries) < count:
        if not (skip_negatives and is_negative_case(index, int(seed), config)):
            entries.append(
                {
                    "case_id": f"{preset}_{int(seed)}_{index:06d}",
                    PRESET_KEY: preset,
                    SEED_KEY: int(seed),
                    INDEX_KEY: index,
                }
            )
        index += 1
    return entries


def _as_loaded(volume: Volume, name: str) -> MetaTensor:
    """`volume` as `LoadImaged(image_only=True)` + `EnsureChannelFirstd` give it from its NIfTI file."""
    affine = torch.as_tensor(volume.affine, dtype=torch.float64)
    meta = {
        "original_affine": affine.clone(),
        "spatial_shape": np.asarray(volume.shape),
        "space": "RAS",
        "original_channel_dim": float("nan"),
        "filename_or_obj": name,
    }
    return MetaTensor(torch.as_tensor(volume.array.astype(np.float32))[None], affine=affine, meta=meta)


class GenerateSyntheticCased(MapTransform):
    """Generate the case a `synthetic_datalist` entry names: image (HU), label (0/1/2) and severity.

    Replaces `LoadImaged` + `EnsureChannelFirstd` at the head of a pipeline: the image and label are channel-first
    float32 `MetaTensor`s with the RAS affine, as loaded from the written dataset, and `severity` is what the
    dataset's datalist would hold (from the case's clinical row). A case is a deterministic function of (preset,
    seed, index), so caching the output is safe.

    Args:
        keys: where the image and the label go (two keys, image first).
        severity_key: where the severity indicator goes (None when the sheet gives none).
        data_dir: shared data folder holding the anatomy (default: `livervae.paths.shared_data_dir()`).
    """

    def __init__(
        self,
        keys: tuple[str, str] | list[str] = ("image", "label"),
        severity_key: str = "severity",
        data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(keys)
        if len(self.keys) != 2:
            raise ValueError(f"GenerateSyntheticCased takes an image and a label key, got {self.keys}")
        self.severity_key = severity_key
        self.data_dir = data_dir

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        missing = [k for k in (PRESET_KEY, SEED_KEY, INDEX_KEY) if k not in d]
        if missing:
            raise InputError(None, f"synthetic datalist entry {d.get('case_id', d)!r} lacks {', '.join(missing)}")
        preset, seed, index = str(d[PRESET_KEY]), int(d[SEED_KEY]), int(d[INDEX_KEY])
        case = generate_synthetic_case_record(index, seed, synthetic_config(preset, self.data_dir))
        name = f"synthetic:{preset}:seed={seed}:index={index}"
        image_key, label_key = self.keys
        d[image_key] = _as_loaded(case.image, name)
        assert case.label is not None  # the generator always labels its cases
        d[label_key] = _as_loaded(case.label, f"{name}:label")
        severity = compute_severity(case.clinical, source=name) if case.clinical else None
        d[self.severity_key] = None if severity is None or severity.value is None else round(severity.value, 6)
        return d
