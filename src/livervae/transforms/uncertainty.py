"""Uncertainty maps in a bundle's post-processing: from the network's class probabilities to the source grid."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

from livervae.transforms.source_grid import probabilities_to_source_grid
from livervae.uncertainty import UncertaintySettings, calibrated_maps, stages_from_classes


class StageProbabilitiesd(MapTransform):
    """Replace (3, *spatial) class probabilities (background, liver, tumour) of the two-stage network by the
    (2, *spatial) stage probabilities they were composed from (`livervae.uncertainty.stages_from_classes`).

    Args:
        keys: keys holding the class probabilities (copy `pred` before it is discretised).
    """

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            classes = d[key]
            if classes.shape[0] != 3:
                raise ValueError(f"{key} must hold 3 class probabilities, got shape {tuple(classes.shape)}")
            stages = stages_from_classes(torch.as_tensor(classes).float())
            d[key] = MetaTensor(stages, meta=dict(classes.meta)) if isinstance(classes, MetaTensor) else stages
        return d


class UncertaintyMapsd(MapTransform):
    """Replace (2, *spatial) stage probabilities (liver, tumour) by the voxel maps P(liver), P(tumour) and
    uncertainty (`livervae.uncertainty.calibrated_maps`), with the settings' temperatures.

    `livervae infer --uncertainty` resamples the stage probabilities to the input grid first and then makes the
    maps; in a bundle config the same order is `StageProbabilitiesd`, `SourceGridProbabilityd`, this.

    Args:
        keys: keys holding stage probabilities.
        settings: temperatures (`livervae.uncertainty.load_uncertainty_settings`); None for temperature 1.
    """

    def __init__(
        self, keys: KeysCollection, settings: UncertaintySettings | None = None, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.settings = settings or UncertaintySettings()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            stages = d[key]
            if stages.shape[0] != 2:
                raise ValueError(f"{key} must hold 2 stage probabilities, got shape {tuple(stages.shape)}")
            maps = torch.from_numpy(calibrated_maps(torch.as_tensor(stages).float(), self.settings))
            d[key] = MetaTensor(maps, meta=dict(stages.meta)) if isinstance(stages, MetaTensor) else maps
        return d


class SourceGridProbabilityd(MapTransform):
    """Resample float maps on the preprocessed grid back to the source CT's grid, linearly
    (`source_grid.probabilities_to_source_grid`); the label counterpart is `SourceGridLabeld`.

    Args:
        keys: channel-first float maps on the preprocessed image's grid.
        transform: the preprocessing to invert (for grids that are not axis-aligned).
        orig_keys: the preprocessed image whose applied operations describe the grid change.
    """

    def __init__(
        self, keys: KeysCollection, transform: Transform, orig_keys: str = "image", allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = transform
        self.orig_keys = orig_keys

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image = d[self.orig_keys]
        source_affine = torch.as_tensor(image.meta["original_affine"])  # the file's affine, set by LoadImaged
        meta = {k: v for k, v in image.meta.items() if k not in ("affine", "original_affine")}
        for key in self.key_iterator(d):
            values = probabilities_to_source_grid(d[key], image, self.transform, self.orig_keys)
            d[key] = MetaTensor(torch.from_numpy(values), affine=source_affine.clone(), meta=dict(meta))
        return d
