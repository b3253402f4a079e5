"""Write the normalised dataset: images/, labels/, datalist.json, summary.json, clinical.csv.

The writer works inside a staging folder (see `livervae.io.atomic.atomic_directory`): a failure on any case
leaves no dataset behind, and a finished dataset appears in one rename.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from livervae import __version__
from livervae.data.case import Case
from livervae.data.clinical import CLINICAL_CSV_COLUMNS, Severity, compute_severity, severity_table_rows
from livervae.data.folds import assign_folds
from livervae.data.summary import summarise_case
from livervae.data.validation import check_ct_image, check_label_map
from livervae.errors import InputError
from livervae.io.atomic import write_json_atomic, write_text_atomic
from livervae.io.nifti import save_nifti
from livervae.io.volume import Volume
from livervae.labels import LABEL_NAMES

logger = logging.getLogger(__name__)

DATALIST = "datalist.json"
SUMMARY = "summary.json"
CLINICAL = "clinical.csv"


class DatasetWriter:
    """Validate and write cases one at a time, then the datalist, summary and clinical table.

    Args:
        root: the (staging) folder to write into.
        name: dataset name recorded in the datalist.
        source_format: the adapter that produced the cases, recorded for provenance.
    """

    def __init__(self, root: Path, name: str, source_format: str) -> None:
        self.root = Path(root)
        self.name = name
        self.source_format = source_format
        (self.root / "images").mkdir(parents=True, exist_ok=True)
        (self.root / "labels").mkdir(parents=True, exist_ok=True)
        self.entries: list[dict[str, Any]] = []
        self.summaries: dict[str, dict[str, Any]] = {}
        self.severities: dict[str, Severity] = {}
        self._tumor_by_patient: dict[str, bool] = {}

    def add(self, case: Case) -> dict[str, Any]:
        """Validate `case`, write its image (and label) as NIfTI and return its summary."""
        start = time.perf_counter()
        if case.case_id in self.summaries:
            raise InputError(case.image.source, f"case id {case.case_id} occurs twice in the dataset")
        check_ct_image(case.image)
        if case.negative and case.label is None:
            raise InputError(case.image.source, "a negative (no-liver) case needs its (empty) label map")
        label = None
        if case.label is not None:
            label = check_label_map(case.label, case.image, require_liver=not case.negative)
        if case.negative and np.any(label):
            raise InputError(case.label.source, "a case marked negative (no liver) has liver or tumour voxels")
        image_rel = f"images/{case.case_id}.nii.gz"
        save_nifti(case.image, self.root / image_rel)
        entry: dict[str, Any] = {"image": image_rel, "case_id": case.case_id, "patient_id": case.patient_id}
        if label is not None:
            label_rel = f"labels/{case.case_id}.nii.gz"
            # The label takes the image's affine: validation allowed float noise, the output has none.
            save_nifti(Volume(label, case.image.affine), self.root / label_rel, dtype=np.uint8)
            entry["label"] = label_rel
        if case.negative:
            entry["negative"] = True
        summary = summarise_case(case.image, label)
        summary.update({"patient_id": case.patient_id, "source": case.image.source})
        summary.update({k: v for k, v in case.extra.items() if isinstance(v, (str, int, float, bool))})
        if case.clinical is not None:
            severity = compute_severity(case.clinical, source=case.extra.get("clinical_source", case.case_id))
            self.severities[case.patient_id] = severity
            summary["severity"] = None if severity.value is None else round(severity.value, 6)
        if label is not None:
            has_tumor = summary["tumor_voxels"] > 0
            self._tumor_by_patient[case.patient_id] = self._tumor_by_patient.get(case.patient_id, False) or has_tumor
        self.entries.append(entry)
        self.summaries[case.case_id] = summary
        logger.info("[%d] %s", len(self.entries), _one_line(case.case_id, summary, time.perf_counter() - start))
        return summary

    def finish(self, n_folds: int, seed: int) -> dict[str, Any]:
        """Assign folds and write datalist.json, summary.json and (if any case had clinical data) clinical.csv."""
        if not self.entries:
            raise InputError(None, "the source produced no cases")
        folds = assign_folds(self._tumor_by_patient, n_folds, seed)
        training, testing = [], []
        for entry in self.entries:
            severity = self.severities.get(entry["patient_id"])
            if severity is not None:
                entry["severity"] = None if severity.value is None else round(severity.value, 6)
            if "label" in entry:
                entry["fold"] = folds[entry["patient_id"]]
                self.summaries[entry["case_id"]]["fold"] = entry["fold"]
                training.append(entry)
            else:
                testing.append(entry)
        datalist: dict[str, Any] = {
            "name": self.name,
            "description": f"LiverVAE normalised dataset from format {self.source_format!r}",
            "labels": {str(k): v for k, v in LABEL_NAMES.items()},
            "num_folds": len(set(folds.values())),
            "fold_seed": seed,
            "numTraining": len(training),
            "numTest": len(testing),
            "training": training,
            "testing": testing,
        }
        if self.severities:
            datalist["clinical"] = CLINICAL
            write_text_atomic(self.root / CLINICAL, _csv_text(severity_table_rows(sorted(self.severities.items()))))
        write_json_atomic(self.root / DATALIST, datalist)
        summary = {
            "dataset": self._totals(),
            "livervae_version": __version__,
            "format": self.source_format,
            "cases": self.summaries,
        }
        write_json_atomic(self.root / SUMMARY, summary)
        return summary

    def _totals(self) -> dict[str, Any]:
        labelled = [s for s in self.summaries.values() if s.get("labelled")]
        totals: dict[str, Any] = {
            "cases": len(self.summaries),
            "labelled_cases": len(labelled),
            "patients": len({s["patient_id"] for s in self.summaries.values()}),
        }
        if labelled:
            totals.update(
                {
                    "liver_ml_mean": round(float(np.mean([s["liver_ml"] for s in labelled])), 2),
                    "tumor_ml_mean": round(float(np.mean([s["tumor_ml"] for s in labelled])), 2),
                    "lesions_total": int(sum(s["lesion_count"] for s in labelled)),
                    "cases_without_tumor": int(sum(s["tumor_voxels"] == 0 for s in labelled)),
                }
            )
        if self.severities:
            totals["patients_with_severity"] = sum(v.value is not None for v in self.severities.values())
        return totals


def _csv_text(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CLINICAL_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _one_line(case_id: str, summary: dict[str, Any], seconds: float) -> str:
    shape = "x".join(str(s) for s in summary["shape"])
    spacing = "x".join(f"{s:.2f}" for s in summary["spacing_mm"])
    text = f"{case_id}: {shape} @ {spacing} mm {summary['orientation']}"
    if summary.get("labelled"):
        text += (
            f", liver {summary['liver_ml']:.0f} mL, tumour {summary['tumor_ml']:.1f} mL "
            f"in {summary['lesion_count']} lesion(s)"
        )
    if "severity" in summary:
        text += ", severity " + ("missing" if summary["severity"] is None else f"{summary['severity']:.2f}")
    return text + f" ({seconds:.1f} s)"
