"""A cohort of labelled patients drawn from one or more normalised datasets, split leave-one-patient-out.

The patch VAE and its U-Net baselines are evaluated by leave-one-patient-out cross-validation (LOPO): fold k
holds out the k-th patient (patients sorted by id) for testing and trains on all the others. The training
patients are returned in cyclic order starting after the test patient, so a validation patient can be chosen
deterministically from the front of that list (see `livervae.data.patches.fold_data`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from livervae.data.datalist import load_fold
from livervae.errors import InputError

DatasetDirs = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def dataset_dirs(value: DatasetDirs) -> list[Path]:
    """Normalise one dataset folder, a list of them, or an `os.pathsep`-separated string into a list of paths."""
    if isinstance(value, (str, os.PathLike)):
        parts = [p for p in str(value).split(os.pathsep) if p]
    else:
        parts = [str(p) for p in value]
    if not parts:
        raise InputError(None, "no dataset folder given")
    return [Path(p) for p in parts]


def load_cohort(value: DatasetDirs) -> list[dict[str, Any]]:
    """Every labelled case of one or more datasets written by `livervae preprocess`, with absolute paths.

    Raises:
        InputError: a folder without datalist.json, a missing file, or a patient id that two datasets share
            for different cases (ids must name one patient).
    """
    entries: list[dict[str, Any]] = []
    seen: dict[str, Path] = {}
    for folder in dataset_dirs(value):
        for entry in load_fold(folder, split="all"):
            entry = dict(entry)
            entry.setdefault("patient_id", entry.get("case_id"))
            entry["dataset"] = str(folder)
            previous = seen.get(entry["patient_id"])
            if previous is not None and previous != folder:
                raise InputError(folder, f"patient id {entry['patient_id']!r} also appears in {previous}")
            seen[entry["patient_id"]] = folder
            entries.append(entry)
    if not entries:
        raise InputError(str(value), "no labelled cases in the dataset(s)")
    return entries


def cohort_patients(entries: Sequence[dict[str, Any]]) -> list[str]:
    """The cohort's patient ids, sorted: fold k tests patient k."""
    return sorted({str(e["patient_id"]) for e in entries})


def lopo_split(entries: Sequence[dict[str, Any]], fold: int) -> dict[str, Any]:
    """Split a cohort for leave-one-patient-out fold `fold`.

    Returns:
        {"test": cases of patient `fold`, "train": every other case, ordered by patient cyclically from the one
        after the test patient, "test_patient": its id, "train_patients": the others in that order,
        "patients": all ids}.

    Raises:
        InputError: fewer than 3 patients (one to test, one to validate, one to train) or a fold out of range.
    """
    patients = cohort_patients(entries)
    if len(patients) < 3:
        raise InputError(None, f"leave-one-patient-out needs at least 3 patients, the cohort has {len(patients)}")
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < len(patients):
        raise InputError(None, f"fold must be an integer in 0..{len(patients) - 1} (one per patient), got {fold!r}")
    test_patient = patients[fold]
    order = patients[fold + 1 :] + patients[:fold]
    by_patient: dict[str, list[dict[str, Any]]] = {p: [] for p in patients}
    for entry in entries:
        by_patient[str(entry["patient_id"])].append(dict(entry))
    return {
        "test": by_patient[test_patient],
        "train": [e for p in order for e in by_patient[p]],
        "test_patient": test_patient,
        "train_patients": order,
        "patients": patients,
    }


def fold_cases(value: DatasetDirs, fold: int, split: str = "val") -> list[dict[str, Any]]:
    """Cases of a leave-one-patient-out fold for evaluation and inference.

    Args:
        value: dataset folder(s).
        fold: the fold (its test patient is patient `fold` in sorted order).
        split: "val" or "test" (the held-out patient), "train" (every other patient) or "all".
    """
    entries = load_cohort(value)
    if split == "all":
        return entries
    if split not in ("val", "test", "train"):
        raise InputError(None, f"split must be one of val, test, train, all; got {split!r}")
    return lopo_split(entries, fold)["train" if split == "train" else "test"]
