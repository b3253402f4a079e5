"""The patch models' evaluation report: AUC per patient and pooled, Dice, and the tumour-coordinates JSON.

`PatchReportHandler` is attached to an evaluator whose inferer records its patches (`livervae.inferers.patch`);
it writes per case the tumour-coordinates JSON and, at the end, `patches.csv` (every scored patch), `metrics.csv`
(per case) and `summary.json` (AUC per patient, pooled AUC and, for segmentation models, Dice).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from livervae.io.atomic import write_json_atomic, write_text_atomic
from livervae.labels import TUMOR
from livervae.metrics.patch_auc import roc_auc
from livervae.metrics.segmentation import OverlapCounts, global_dice, overlap

logger = logging.getLogger(__name__)


def _meta(value: Any) -> dict[str, Any]:
    return dict(getattr(value, "meta", {}) or {})


def _case_id(item: dict[str, Any], batch: dict[str, Any]) -> str:
    for source in (batch, item):
        if source.get("case_id"):
            return str(source["case_id"])
    name = str(_meta(item.get("image")).get("filename_or_obj", "case"))
    return Path(name).name.removesuffix(".gz").removesuffix(".nii")


def _to_world(affine: np.ndarray, voxel: Sequence[float]) -> list[float]:
    return [float(v) for v in (affine[:3, :3] @ np.asarray(voxel, dtype=float) + affine[:3, 3])]


def tumor_overlap(pred: Any, label: Any) -> OverlapCounts:
    """Overlap of a binary tumour prediction with the tumour (label 2) of a 0/1/2 map."""
    p = torch.as_tensor(pred).detach().cpu().numpy() > 0.5
    r = np.rint(torch.as_tensor(label).detach().cpu().numpy()) == TUMOR
    return overlap(p, r)


class PatchReportHandler:
    """Turn an evaluator's patch records into the AUCs, the coordinates JSON and the report files.

    Args:
        inferer: the evaluator's `LiverPatchInferer` or `SliceMapInferer` (its `records` are read after each
            iteration).
        output_dir: where the report goes.
        decision_threshold: a patch with score at or above it is reported as tumour in the coordinates JSON.
        mask_key: for segmentation models, the output key of the binary tumour mask on the preprocessed grid
            (Dice against the label's tumour); None skips Dice.
        model_name: written into the summary.
    """

    def __init__(
        self,
        inferer: Any,
        output_dir: str | os.PathLike[str],
        decision_threshold: float = 0.5,
        mask_key: str | None = None,
        model_name: str = "",
    ) -> None:
        self.inferer = inferer
        self.output_dir = Path(output_dir)
        self.decision_threshold = float(decision_threshold)
        self.mask_key = mask_key
        self.model_name = model_name
        self.rows: list[dict[str, Any]] = []
        self.cases: list[dict[str, Any]] = []
        self.summary: dict[str, Any] | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._write)

    def _collect(self, engine: Engine) -> None:
        outputs = engine.state.output if isinstance(engine.state.output, list) else [engine.state.output]
        batches = engine.state.batch if isinstance(engine.state.batch, list) else [engine.state.batch] * len(outputs)
        for item, batch, records in zip(outputs, batches, self.inferer.records):
            case_id = _case_id(item, batch)
            patient_id = str(batch.get("patient_id", case_id))
            meta = _meta(item.get("image"))
            affine = np.asarray(getattr(item.get("image"), "affine", np.eye(4)), dtype=float)
            original = np.asarray(meta.get("original_affine", affine), dtype=float)
            points = []
            for r in records:
                self.rows.append(
                    {
                        "patient_id": patient_id,
                        "case_id": case_id,
                        **{k: v for k, v in r.items() if k != "centre_voxel"},
                    }
                )
                if "centre_voxel" in r and r["score"] >= self.decision_threshold:
                    world = _to_world(affine, r["centre_voxel"])
                    ijk = np.linalg.solve(original, np.asarray([*world, 1.0]))[:3]
                    points.append(
                        {
                            "slice": r["slice"],
                            "patch_origin": [r["row"], r["col"]],
                            "probability": round(r["score"], 4),
                            "variance": round(r["variance"], 6),
                            "ras_mm": [round(v, 2) for v in world],
                            "input_voxel": [round(float(v), 2) for v in ijk],
                        }
                    )
            case = {
                "patient_id": patient_id,
                "case_id": case_id,
                "patches": len(records),
                "tumor_patches": sum(r["label"] for r in records),
                "auc": roc_auc([r["score"] for r in records], [r["label"] for r in records]),
            }
            if self.mask_key is not None and self.mask_key in item:
                counts = tumor_overlap(item[self.mask_key], item["label"])
                case.update({"tp": counts.intersection, "pred": counts.predicted, "ref": counts.reference})
                case["dice"] = counts.dice
            if records and "centre_voxel" in records[0]:
                path = self.output_dir / f"{case_id}_tumor_coordinates.json"
                write_json_atomic(
                    path,
                    {
                        "case_id": case_id,
                        "source_file": str(meta.get("filename_or_obj", "")),
                        "decision_threshold": self.decision_threshold,
                        "coordinates": "ras_mm: world RAS millimetres; input_voxel: (i, j, k) index in the input file",
                        "tumor_patches": points,
                    },
                )
                case["coordinates_json"] = str(path)
            self.cases.append(case)
            logger.info(
                "%s: %d patches (%d tumour), patch AUC %s%s",
                case_id,
                case["patches"],
                case["tumor_patches"],
                "n/a" if case["auc"] is None else f"{case['auc']:.3f}",
                f", Dice {case['dice']:.3f}" if "dice" in case else "",
            )

    def _write(self, engine: Engine) -> None:
        self.summary = summarise(self.rows, self.cases, self.model_name)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.output_dir / "patches.csv", _csv(self.rows))
        write_text_atomic(self.output_dir / "metrics.csv", _csv(self.cases))
        write_json_atomic(self.output_dir / "summary.json", self.summary)
        logger.info("patch report written to %s", self.output_dir)


def summarise(rows: Sequence[dict[str, Any]], cases: Sequence[dict[str, Any]], model_name: str = "") -> dict[str, Any]:
    """AUC per patient and pooled over every patch, and Dice (per case mean and global) when present."""
    patients: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        patients.setdefault(row["patient_id"], []).append(row)
    summary: dict[str, Any] = {
        "model": model_name,
        "cases": len(cases),
        "patches": len(rows),
        "tumor_patches": int(sum(r["label"] for r in rows)),
        "auc_per_patient": {
            p: roc_auc([r["score"] for r in rs], [r["label"] for r in rs]) for p, rs in patients.items()
        },
        "auc_pooled": roc_auc([r["score"] for r in rows], [r["label"] for r in rows]),
    }
    scored = [c for c in cases if "dice" in c]
    if scored:
        summary["tumor_dice_mean"] = float(np.mean([c["dice"] for c in scored]))
        summary["tumor_dice_global"] = global_dice([OverlapCounts(c["tp"], c["pred"], c["ref"]) for c in scored])
    return summary


def _csv(rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    fields: list[str] = []
    for row in rows:
        fields.extend(k for k in row if k not in fields)
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
