"""Liver-referenced intensity: shift a CT so its liver's median HU sits at a fixed level.

Tumour contrast in CT is relative to the parenchyma, whose enhancement varies between patients, scanners and
contrast phases by tens of HU (the phantoms draw it from 100-130 HU). A model that sees one 16 x 16 patch has no
context to tell a faint hypodense lesion from a darker liver, so both patch models see HU shifted by
`reference_hu - median(HU inside the liver)` before windowing.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from livervae.errors import InputError
from livervae.labels import LIVER


class LiverReferencedIntensityd(MapTransform):
    """Shift `keys` so the median over `label_key >= 1` (liver and tumour) equals `reference_hu`.

    Args:
        keys: CT images in HU, channel-first, on the label's grid.
        label_key: the label map or liver mask.
        reference_hu: where the liver median goes.

    Raises:
        InputError: an empty liver, or an image and label of different shapes.
    """

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str = "label",
        reference_hu: float = 100.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.label_key = label_key
        self.reference_hu = float(reference_hu)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        label = d[self.label_key]
        name = str(getattr(label, "meta", {}).get("filename_or_obj", self.label_key))
        liver = torch.as_tensor(label) >= LIVER
        for key in self.key_iterator(d):
            image = d[key]
            if tuple(image.shape) != tuple(liver.shape):
                raise InputError(name, f"label {tuple(liver.shape)} is not on the image's grid {tuple(image.shape)}")
            values = torch.as_tensor(image)[liver]
            if values.numel() == 0:
                raise InputError(name, "empty liver: cannot reference the intensities to it")
            d[key] = image + (self.reference_hu - float(values.float().median()))
        return d
