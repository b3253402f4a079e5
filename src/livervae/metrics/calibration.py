"""How far voxel probabilities can be trusted: calibration error, temperature fitting, error detection.

Used by `benchmarks/uncertainty.py` to choose the uncertainty estimator (voxel uncertainty as a detector of
wrong voxels: `rank_auroc`) and to fit the temperatures that
`livervae infer --uncertainty` applies (`livervae.uncertainty`).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

ECE_BINS = 15
# Temperatures tried by `fit_temperature`: 0.05 to 5, log-spaced (a two-class softmax is rarely off by more).
TEMPERATURE_GRID = np.exp(np.linspace(np.log(0.05), np.log(5.0), 93))


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: the voxel-weighted mean |accuracy - confidence| over `bins` equal-width confidence bins.

    Args:
        confidence: the probability of the predicted class, one per voxel (top-label confidence).
        correct: whether the predicted class is the reference class.
    """
    confidence = np.asarray(confidence, dtype=np.float64).ravel()
    correct = np.asarray(correct, dtype=bool).ravel()
    if confidence.size == 0:
        return float("nan")
    index = np.clip((confidence * bins).astype(np.intp), 0, bins - 1)
    confidence_sum = np.bincount(index, weights=confidence, minlength=bins)
    correct_sum = np.bincount(index, weights=correct.astype(np.float64), minlength=bins)
    return float(np.abs(correct_sum - confidence_sum).sum() / confidence.size)


def top_label(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The predicted class and its probability of (C, ...) class probabilities."""
    predicted = np.argmax(classes, axis=0)
    return predicted, np.take_along_axis(classes, predicted[None], axis=0)[0]


def binary_nll(probability: np.ndarray, target: np.ndarray, eps: float = 1e-6) -> float:
    """Mean negative log-likelihood of 0/1 `target` under `probability`."""
    p = np.clip(np.asarray(probability, dtype=np.float64), eps, 1.0 - eps)
    t = np.asarray(target, dtype=bool)
    return float(-(np.log(p[t]).sum() + np.log1p(-p[~t]).sum()) / p.size)


def fit_temperature(probability: np.ndarray, target: np.ndarray, grid: np.ndarray = TEMPERATURE_GRID) -> float:
    """The temperature T minimising the NLL of sigmoid(logit(p) / T) against `target` (grid search).

    Args:
        probability: a two-class softmax's foreground probability per voxel.
        target: the reference 0/1 per voxel.
    """
    p = np.clip(np.asarray(probability, dtype=np.float64).ravel(), 1e-6, 1.0 - 1e-6)
    logit = np.log(p) - np.log1p(-p)
    t = np.asarray(target, dtype=bool).ravel()
    losses = [binary_nll(1.0 / (1.0 + np.exp(-logit / temperature)), t) for temperature in grid]
    return float(grid[int(np.argmin(losses))])


def fit_platt(probability: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Platt scaling of a two-class softmax probability: the (temperature, bias) minimising the NLL of
    sigmoid(logit(p) / T + bias) against `target` (L-BFGS from T = 1, bias = 0).

    A temperature alone only sharpens or softens; the bias also moves where p = 0.5 falls, which a stage whose
    probability has a floor (a liver probability of about 0.1 everywhere) needs.
    """
    from scipy.optimize import minimize

    p = np.clip(np.asarray(probability, dtype=np.float64).ravel(), 1e-6, 1.0 - 1e-6)
    logit = np.log(p) - np.log1p(-p)
    t = np.asarray(target, dtype=np.float64).ravel()

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        z = params[0] * logit + params[1]
        # NLL of a logistic model, stable for large |z|: log(1 + e^z) - t z
        value = np.logaddexp(0.0, z) - t * z
        grad_z = 1.0 / (1.0 + np.exp(-z)) - t
        return float(value.mean()), np.array([(grad_z * logit).mean(), grad_z.mean()])

    slope, bias = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B").x
    if slope <= 0:
        raise ValueError("the probabilities rank the targets backwards; no calibration with a positive temperature")
    return float(1.0 / slope), float(bias)


def rank_auroc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """ROC AUC of `scores` for 0/1 `positive` from ranks (Mann-Whitney U, ties averaged); None without both.

    The same number as MONAI's `compute_roc_auc`, whose per-element loop is too slow for millions of voxels.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positive = np.asarray(positive, dtype=bool).ravel()
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def sample_voxels(mask: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Flat indices of at most `count` voxels of `mask`, drawn without replacement with a fixed seed."""
    index = np.flatnonzero(mask)
    if index.size <= count:
        return index
    return np.sort(np.random.default_rng(seed).choice(index, size=count, replace=False))
