"""Ablation of the active-contour refinement: the tumour bundle evaluated with and without it on the same cases.

Each dataset is evaluated twice through the bundle's own `evaluate.json` (same model, same cases, only
`active_contour` switched), and the tumour metrics that refinement can move are tabulated side by side: tumour
Dice per case and global, lesion-wise recall and precision by the LiTS criterion (overall, and recall by size),
the lenient any-overlap recall and precision beside them, and tumour HD95/ASSD. The table goes to `ablation.md`,
the numbers to `ablation.json`, both written atomically.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from livervae.bundle import TUMOR_BUNDLE, evaluate
from livervae.io.atomic import write_json_atomic, write_text_atomic
from livervae.labels import current_key

logger = logging.getLogger(__name__)

# (summary group, key in it, row key, column title); group None is the top-level summary. The lesion columns are
# the LiTS detection criterion (summary "lesions", row keys lits_*) and, secondary, the lenient any-overlap count
# (summary "lesions_any_overlap", row keys any_overlap_*); see `livervae.metrics.lesions`.
COLUMNS: tuple[tuple[str | None, str, str, str], ...] = (
    (None, "tumor_dice_mean", "tumor_dice_mean", "tumour Dice (mean)"),
    (None, "tumor_dice_global", "tumor_dice_global", "tumour Dice (global)"),
    ("lesions", "recall", "lits_recall", "LiTS lesion recall"),
    ("lesions", "precision", "lits_precision", "LiTS lesion precision"),
    ("lesions", "recall_<10mm", "lits_recall_<10mm", "LiTS recall <10 mm"),
    ("lesions", "recall_10-20mm", "lits_recall_10-20mm", "LiTS recall 10-20 mm"),
    ("lesions", "recall_>20mm", "lits_recall_>20mm", "LiTS recall >20 mm"),
    ("lesions_any_overlap", "recall", "any_overlap_recall", "any-overlap recall"),
    ("lesions_any_overlap", "precision", "any_overlap_precision", "any-overlap precision"),
    (None, "tumor_hd95_mm_mean", "tumor_hd95_mm_mean", "tumour HD95 mm"),
    (None, "tumor_assd_mm_mean", "tumor_assd_mm_mean", "tumour ASSD mm"),
    (None, "liver_dice_mean", "liver_dice_mean", "liver Dice"),
)


def _value(summary: dict[str, Any], group: str | None, key: str) -> float:
    source = summary.get(group, {}) if group else summary
    value = source.get(key)
    return float("nan") if value is None else float(value)


def _format(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def run_ablation(
    datasets: dict[str, str | os.PathLike[str]],
    out: str | os.PathLike[str],
    model_path: str | os.PathLike[str] | None = None,
    split: str = "all",
    fold: int = 0,
    device: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate the tumour bundle with and without active-contour refinement on each dataset.

    Args:
        datasets: a name for each normalised dataset folder, e.g. {"blurred phantoms": ..., "3D-IRCADb 17": ...}.
        out: folder for the per-run evaluation outputs, `ablation.json` and `ablation.md`.
        model_path: the two-stage checkpoint; default the bundle's `models/model.pt`.
        split: which cases of each dataset ("all", or "val" of `fold`).
        fold: the fold for `split="val"`.
        device: "cpu", "cuda", ...
        overrides: further bundle config overrides applied to both runs.

    Returns:
        {"rows": [{"dataset", "refinement", "cases", <metric>: value, ...}], "markdown": table}.
    """
    out = Path(out)
    rows = []
    for name, dataset in datasets.items():
        for refined in (False, True):
            settings = dict(overrides or {})
            settings["active_contour"] = refined
            if model_path is not None:
                settings["model_path"] = str(model_path)
            folder = out / _slug(name) / ("with_refinement" if refined else "without_refinement")
            logger.info("ablation: %s, refinement %s", name, "on" if refined else "off")
            summary = evaluate(TUMOR_BUNDLE, dataset, fold, split, folder, device, settings)["summary"]
            row: dict[str, Any] = {"dataset": name, "refinement": refined, "cases": summary.get("cases")}
            row.update({row_key: _value(summary, group, key) for group, key, row_key, _ in COLUMNS})
            rows.append(row)
    table = markdown_table(rows)
    write_json_atomic(out / "ablation.json", {"split": split, "fold": fold, "rows": rows})
    write_text_atomic(out / "ablation.md", table)
    return {"rows": rows, "markdown": table}


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The ablation rows as a Markdown table, one line per dataset and setting."""
    header = ["dataset", "refinement", "cases"] + [title for *_, title in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(row["dataset"]), "on" if row["refinement"] else "off", str(row["cases"])]
        cells += [_format(row.get(row_key, math.nan)) for _, _, row_key, _ in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_") or "dataset"


def load_ablation(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an `ablation.json` back (one written before the "tumor" spelling too)."""
    saved = json.loads(Path(path).read_text(encoding="utf-8"))
    saved["rows"] = [{current_key(k): v for k, v in row.items()} for row in saved.get("rows", [])]
    return saved
