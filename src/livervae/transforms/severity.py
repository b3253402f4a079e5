"""Carry the per-patient severity indicator through a MONAI pipeline as a float tensor (NaN when missing)."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.transforms import MapTransform


class Severityd(MapTransform):
    """Turn the datalist's `severity` (float, None or absent) into a 0-d float32 tensor, NaN when missing.

    The default collate cannot batch None, and weak supervision needs to know which samples have an
    indicator, so missing values become NaN rather than being dropped.
    """

    def __init__(self, keys: str | list[str] = "severity") -> None:
        super().__init__(keys, allow_missing_keys=True)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.keys:
            value = d.get(key)
            number = float("nan") if value is None else float(value)
            if not math.isnan(number) and not 0.0 <= number <= 1.0:
                raise ValueError(f"severity {number} outside [0, 1]")
            d[key] = torch.tensor(number, dtype=torch.float32)
        return d
