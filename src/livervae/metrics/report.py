"""Collect per-case metrics and write `metrics.csv`, `summary.json` and overlay PNGs (all atomically).

Per case: liver and tumour Dice, HD95 and ASSD (mm), relative volume error, lesion counts and detections.
Summary: means over cases (NaN-aware), the LiTS global tumour Dice, and lesion-wise precision/recall overall
and by lesion size (see `livervae.metrics.lesions`).

Lesion detection is reported twice. The primary numbers follow the LiTS challenge criterion (merged lesions,
IoU > `min_overlap`, 0.5): summary `lesions`, row/CSV columns `detected_lesions` and `false_positive_lesions`.
The lenient any-overlap count is secondary and says so in its name: summary `lesions_any_overlap`, columns
`detected_lesions_any_overlap` and `false_positive_lesions_any_overlap`. `reference_lesions` and
`predicted_lesions` (the 26-connected components) are the same for both.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from livervae.io.atomic import write_json_atomic, write_text_atomic
from livervae.io.volume import Volume
from livervae.metrics.lesions import LITS_MIN_OVERLAP, Lesion, detection_summary, match_lesions
from livervae.metrics.segmentation import (
    OverlapCounts,
    global_dice,
    overlap,
    structure_masks,
    surface_distances,
    volume_error,
)
from livervae.plots import save_overlay_png

CSV_COLUMNS = (
    "case_id",
    "liver_dice",
    "liver_hd95_mm",
    "liver_assd_mm",
    "liver_volume_error",
    "tumor_dice",
    "tumor_hd95_mm",
    "tumor_assd_mm",
    "tumor_volume_error",
    "reference_lesions",
    "predicted_lesions",
    "detected_lesions",
    "false_positive_lesions",
    "detected_lesions_any_overlap",
    "false_positive_lesions_any_overlap",
)


class SegmentationReport:
    """Accumulate cases, then write the report.

    Args:
        structures: which structures to evaluate ("liver", "tumor"); the liver bundle evaluates liver only.
        surface: compute HD95/ASSD (the slowest part on large volumes).
        min_overlap: the LiTS lesion-detection IoU threshold (a detection needs IoU greater than this).
    """

    def __init__(
        self,
        structures: tuple[str, ...] = ("liver", "tumor"),
        surface: bool = True,
        min_overlap: float = LITS_MIN_OVERLAP,
    ) -> None:
        self.structures = structures
        self.surface = surface
        self.min_overlap = min_overlap
        self.rows: list[dict[str, Any]] = []
        self.counts: dict[str, list[OverlapCounts]] = {name: [] for name in structures}
        self.reference_lesions: list[Lesion] = []  # LiTS: matched = detected
        self.predicted_lesions: list[Lesion] = []  # LiTS: matched = true positive
        self.reference_lesions_any_overlap: list[Lesion] = []
        self.predicted_lesions_any_overlap: list[Lesion] = []
        self.overlay_inputs: list[tuple[str, Volume, np.ndarray, np.ndarray]] = []

    def add(self, case_id: str, pred: np.ndarray, ref: np.ndarray, image: Volume, keep_overlay: bool = True) -> dict:
        """Evaluate one case (0/1/2 maps on `image`'s grid) and return its row."""
        if pred.shape != ref.shape or pred.shape != image.shape:
            raise ValueError(f"{case_id}: prediction {pred.shape}, reference {ref.shape}, image {image.shape} differ")
        row: dict[str, Any] = {"case_id": case_id}
        pred_masks, ref_masks = structure_masks(pred), structure_masks(ref)
        for name in self.structures:
            counts = overlap(pred_masks[name], ref_masks[name])
            self.counts[name].append(counts)
            row[f"{name}_dice"] = counts.dice
            hd95, assd = (
                surface_distances(pred_masks[name], ref_masks[name], image.spacing)
                if self.surface
                else (
                    math.nan,
                    math.nan,
                )
            )
            row[f"{name}_hd95_mm"], row[f"{name}_assd_mm"] = hd95, assd
            row[f"{name}_volume_error"] = volume_error(pred_masks[name], ref_masks[name])
        if "tumor" in self.structures:
            lesions = match_lesions(pred_masks["tumor"], ref_masks["tumor"], image.voxel_volume_ml, self.min_overlap)
            self.reference_lesions += lesions.reference
            self.predicted_lesions += lesions.predicted
            self.reference_lesions_any_overlap += lesions.reference_any_overlap
            self.predicted_lesions_any_overlap += lesions.predicted_any_overlap
            row["reference_lesions"] = len(lesions.reference)
            row["predicted_lesions"] = len(lesions.predicted)
            row["detected_lesions"] = sum(lesion.matched for lesion in lesions.reference)
            row["false_positive_lesions"] = sum(not lesion.matched for lesion in lesions.predicted)
            row["detected_lesions_any_overlap"] = sum(lesion.matched for lesion in lesions.reference_any_overlap)
            row["false_positive_lesions_any_overlap"] = sum(
                not lesion.matched for lesion in lesions.predicted_any_overlap
            )
        self.rows.append(row)
        if keep_overlay:
            self.overlay_inputs.append((case_id, image, pred, ref))
        return row

    def summary(self) -> dict[str, Any]:
        """Means over cases, global tumour Dice and lesion-wise detection.

        `lesions` holds the LiTS detection numbers (with the `min_overlap` used), `lesions_any_overlap` the
        lenient ones; both as `livervae.metrics.lesions.detection_summary` returns them.
        """
        result: dict[str, Any] = {"cases": len(self.rows)}
        for name in self.structures:
            for metric in ("dice", "hd95_mm", "assd_mm", "volume_error"):
                values = [row[f"{name}_{metric}"] for row in self.rows]
                finite = [v for v in values if not math.isnan(v)]
                key = f"{name}_{metric}_mean"
                result[key] = float(np.mean(finite)) if finite else math.nan
            result[f"{name}_dice_global"] = global_dice(self.counts[name])
        if "tumor" in self.structures:
            lits = detection_summary(self.reference_lesions, self.predicted_lesions)
            result["lesions"] = {**lits, "min_overlap": self.min_overlap}
            result["lesions_any_overlap"] = detection_summary(
                self.reference_lesions_any_overlap, self.predicted_lesions_any_overlap
            )
        return result

    def write(self, out_dir: str | os.PathLike[str], overlays: bool = True) -> dict[str, Any]:
        """Write metrics.csv, summary.json (NaN as null) and overlays/<case>.png; return the summary."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        buffer = io.StringIO()
        columns = [c for c in CSV_COLUMNS if c == "case_id" or any(c in row for row in self.rows)]
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _format(v) for k, v in row.items()})
        write_text_atomic(out / "metrics.csv", buffer.getvalue())
        summary = self.summary()
        write_json_atomic(out / "summary.json", _json_safe({"summary": summary, "cases": self.rows}))
        if overlays:
            for case_id, image, pred, ref in self.overlay_inputs:
                save_overlay_png(image, pred, out / "overlays" / f"{case_id}.png", title=case_id, reference=ref)
        return summary


def _format(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
