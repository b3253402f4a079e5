"""Patient-disjoint cross-validation folds, deterministic by seed and balanced for tumour presence."""

from __future__ import annotations

import logging

import numpy as np

from livervae.errors import InputError

logger = logging.getLogger(__name__)


def assign_folds(patients: dict[str, bool], n_folds: int, seed: int) -> dict[str, int]:
    """Assign every patient to one of `n_folds` folds.

    Patients with and without tumour are shuffled separately (by `seed`) and dealt round-robin, continuing
    the count from one group to the next, so each fold gets a similar number of patients and of tumour-free
    patients. All cases of a patient share the patient's fold, which keeps folds patient-disjoint.

    Args:
        patients: patient id → whether any of the patient's cases has tumour.
        n_folds: requested number of folds; capped at the number of patients (with a log line).
        seed: the shuffle seed; the same seed and patients give the same folds.
    """
    if n_folds < 1:
        raise InputError(None, f"the number of folds must be at least 1, got {n_folds}")
    if not patients:
        return {}
    if n_folds > len(patients):
        logger.warning("only %d patients: using %d folds instead of %d", len(patients), len(patients), n_folds)
        n_folds = len(patients)
    rng = np.random.default_rng(seed)
    folds: dict[str, int] = {}
    dealt = 0
    for has_tumor in (True, False):
        group = sorted(p for p, flag in patients.items() if flag == has_tumor)
        for index in rng.permutation(len(group)):
            folds[group[index]] = dealt % n_folds
            dealt += 1
    return folds
