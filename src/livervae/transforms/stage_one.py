"""The liver mask stage 1 gives, added to a training case so the tumour model learns on the crops it will get."""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.transforms.utils import get_largest_connected_component_mask

from livervae.errors import InputError

logger = logging.getLogger(__name__)


class StageOneLiverd(MapTransform):
    """Run the stage-1 liver predictor on a HU image and store its largest liver component under `output_key`.

    At inference the tumour model sees the crop around stage 1's liver (`TwoStageLiverTumorNet.liver_box`), not
    around the reference liver; cropping training cases around this mask (`LiverROICropd(source_key=...)`) gives it
    the same view, stage-1 errors included. Deterministic, so a `CacheDataset` runs stage 1 once per case.

    Args:
        keys: the HU image on the tumour model's grid (channel-first), one key.
        predictor: maps a (1, 1, *spatial) HU tensor to a (1, 1, *spatial) liver probability on the same grid,
            e.g. `TwoStageLiverTumorNet.liver_probability`.
        output_key: where the uint8 mask goes (same grid and metadata as the image).
        fallback_key: the reference mask: used instead (non-zero voxels) when stage 1 finds no liver, with a
            warning; an empty one is refused.
        device: where the predictor runs.
        threshold: liver probability above which a voxel is liver, as in the chain.
    """

    def __init__(
        self,
        keys: KeysCollection,
        predictor: Callable[[torch.Tensor], torch.Tensor],
        output_key: str = "stage1_liver",
        fallback_key: str = "label",
        device: torch.device | str = "cpu",
        threshold: float = 0.5,
    ) -> None:
        super().__init__(keys)
        if len(self.keys) != 1:
            raise ValueError(f"StageOneLiverd takes one image key, got {self.keys}")
        self.predictor = predictor
        self.output_key = output_key
        self.fallback_key = fallback_key
        self.device = torch.device(device)
        self.threshold = float(threshold)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image = d[self.keys[0]]
        reference = d.get(self.fallback_key)
        if reference is not None and not bool(torch.as_tensor(reference).any()):
            # A training case without a reference liver is bad data whatever stage 1 finds.
            name = getattr(reference, "meta", {}).get("filename_or_obj", self.fallback_key)
            raise InputError(name, "empty liver: nothing to crop around")
        hu = torch.as_tensor(image.as_tensor() if isinstance(image, MetaTensor) else image)
        with torch.no_grad():
            probability = self.predictor(hu[None].float().to(self.device))[0].cpu()
        liver = probability > self.threshold
        if bool(liver.any()):
            mask = get_largest_connected_component_mask(liver)
        else:
            name = getattr(image, "meta", {}).get("filename_or_obj", self.keys[0])
            logger.warning("%s: stage 1 found no liver; cropping around %s instead", name, self.fallback_key)
            mask = torch.as_tensor(d[self.fallback_key]) > 0
        mask = mask.to(torch.uint8)
        d[self.output_key] = MetaTensor(mask, meta=dict(image.meta)) if isinstance(image, MetaTensor) else mask
        return d
