"""Leave-one-patient-out cross-validation of a patch bundle: train and evaluate every fold, pool the patches.

`livervae cv` (and `benchmarks/patch_vae_vs_unet.py`) run, for each fold k: `livervae.bundle.train` on every
patient but patient k (one of them validates, for early stopping and the best model), then
`livervae.bundle.evaluate` on patient k. The AUC per fold is the held-out patient's patch AUC (undefined when it
has no tumour patch); the pooled AUC is computed over the patches of every held-out patient together.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from pathlib import Path
from typing import Any

from livervae.bundle import PATCH_BUNDLES, evaluate, train
from livervae.data.cohort import cohort_patients, load_cohort
from livervae.errors import InputError
from livervae.io.atomic import write_json_atomic
from livervae.metrics.patch_auc import roc_auc

logger = logging.getLogger(__name__)


def run_fold(
    name: str,
    dataset_dir: Any,
    fold: int,
    out: Path,
    epochs: int | None = None,
    device: str | None = None,
    preset: str = "default",
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train and evaluate one fold under `out`; return its summary (with the training time in seconds)."""
    start = time.perf_counter()
    model = train(
        name,
        dataset_dir,
        fold,
        epochs,
        device,
        out / "train",
        preset,
        {**(overrides or {}), "ckpt_dir": str(out / "models")},
    )
    seconds = time.perf_counter() - start
    result = evaluate(name, dataset_dir, fold, "val", out / "eval", device, {"model_path": str(model)})
    return {
        **result["summary"],
        "train_seconds": round(seconds, 2),
        "model": str(model),
        "eval_dir": result["output_dir"],
    }


def read_patch_rows(eval_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The scored patches of an evaluation (`patches.csv`) with numeric score and label."""
    with open(Path(eval_dir) / "patches.csv", newline="", encoding="utf-8") as handle:
        return [{**row, "score": float(row["score"]), "label": int(row["label"])} for row in csv.DictReader(handle)]


def pooled_auc(eval_dirs: list[str]) -> float | None:
    """ROC AUC over every patch of the given evaluations together."""
    rows = [row for d in eval_dirs for row in read_patch_rows(d)]
    return roc_auc([r["score"] for r in rows], [r["label"] for r in rows])


def run_cv(
    name: str,
    dataset_dir: Any,
    out: str | os.PathLike[str],
    folds: list[int] | None = None,
    epochs: int | None = None,
    device: str | None = None,
    preset: str = "default",
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the folds (default: all, one per patient) and write `<out>/summary.json`; return it."""
    if Path(name).name not in PATCH_BUNDLES:
        raise InputError(name, f"leave-one-patient-out runs the patch bundles only ({', '.join(PATCH_BUNDLES)})")
    patients = cohort_patients(load_cohort(dataset_dir))
    folds = list(range(len(patients))) if folds is None else list(folds)
    out = Path(out)
    results = {}
    for fold in folds:
        logger.info("fold %d of %s: testing on %s", fold, folds, patients[fold] if 0 <= fold < len(patients) else "?")
        results[fold] = run_fold(name, dataset_dir, fold, out / f"fold{fold}", epochs, device, preset, overrides)
    summary = {
        "bundle": Path(name).name,
        "patients": patients,
        "folds": {
            str(f): {
                "test_patient": patients[f],
                "auc": r["auc_pooled"],
                "tumor_patches": r["tumor_patches"],
                "patches": r["patches"],
                "train_seconds": r["train_seconds"],
                **{k: r[k] for k in ("tumor_dice_mean",) if k in r},
            }
            for f, r in results.items()
        },
        "auc_pooled": pooled_auc([r["eval_dir"] for r in results.values()]),
    }
    write_json_atomic(out / "summary.json", summary)
    return summary


def format_cv(summary: dict[str, Any]) -> str:
    """A small table: one line per fold, then the pooled AUC."""
    lines = [f"{'fold':>4}  {'test patient':<16} {'patches':>8} {'tumor':>7} {'AUC':>6} {'train s':>8}"]
    for fold, r in summary["folds"].items():
        auc = "n/a" if r["auc"] is None else f"{r['auc']:.3f}"
        counts = f"{r['patches']:>8} {r['tumor_patches']:>7}"
        lines.append(f"{fold:>4}  {r['test_patient']:<16} {counts} {auc:>6} {r['train_seconds']:>8.1f}")
    pooled = summary["auc_pooled"]
    lines.append(f"pooled AUC over {len(summary['folds'])} fold(s): {'n/a' if pooled is None else f'{pooled:.3f}'}")
    return "\n".join(lines)
