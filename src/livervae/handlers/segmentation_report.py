"""An Ignite handler that evaluates each prediction against its reference and writes the report at the end."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from livervae.io.nifti import load_nifti
from livervae.io.volume import Volume
from livervae.metrics.report import SegmentationReport

logger = logging.getLogger(__name__)


def _array(value: Any) -> np.ndarray:
    array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    return array[0] if array.ndim == 4 else array


class SegmentationReportHandler:
    """Attach to an evaluator whose decollated output holds `pred` and `reference` in the original image space.

    Each item's `pred` and `reference` (0/1/2 maps, channel-first; the reference loaded after inference, since
    the evaluator reserves `label`) are compared on the grid of the original image, read from `source_file`
    so overlays show the CT as stored. At completion the report is written to `output_dir` (metrics.csv,
    summary.json, overlays/).

    Args:
        output_dir: where the report goes.
        structures: evaluated structures, ("liver",) for the liver bundle.
        image_key: key holding the original image path.
        reference_key: key holding the reference label map.
        overlays: write overlay PNGs.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike[str],
        structures: tuple[str, ...] | list[str] = ("liver", "tumor"),
        image_key: str = "source_file",
        reference_key: str = "reference",
        overlays: bool = True,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.structures = tuple(structures)
        self.image_key = image_key
        self.reference_key = reference_key
        self.overlays = overlays
        self.report = SegmentationReport(self.structures)
        self.summary: dict[str, Any] | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._write)

    def _collect(self, engine: Engine) -> None:
        # Postprocessing writes new keys to the output; datalist keys such as `source_file` stay in the batch.
        for batch, item in zip(engine.state.batch, engine.state.output):
            source = item.get(self.image_key, batch.get(self.image_key))
            image = load_nifti(source)
            case_id = Path(source).name.removesuffix(".gz").removesuffix(".nii")
            pred, ref = _array(item["pred"]).astype(np.uint8), _array(item[self.reference_key]).astype(np.uint8)
            row = self.report.add(case_id, pred, ref, Volume(image.array, image.affine), keep_overlay=self.overlays)
            logger.info("%s: %s", case_id, ", ".join(f"{k} {v:.3f}" for k, v in row.items() if k.endswith("dice")))

    def _write(self, engine: Engine) -> None:
        self.summary = self.report.write(self.output_dir, overlays=self.overlays)
        logger.info("metrics written to %s", self.output_dir)
