"""Axial liver slices and the 2D patch grid of the patch VAE (and the patch-level AUC of its baselines).

Pipeline (one fold):
    volumes    MONAI dict transforms (load, RAS, in-plane spacing, liver window, crop to the liver box), cached by
               a CacheDataset/PersistentDataset in the bundle config
    slices     `liver_slices`: every axial slice (last axis) with liver, as (1, H, W) image and 0/1/2 label
    balance    `balance_patients`: slices of patients with fewer liver slices are duplicated so that every
               training patient contributes the same number of slices (patient-level stratification)
    patches    `grid_patches` / `extract_patches`: MONAI `GridPatch` over each slice at a configurable size and
               stride; a patch is kept when at least `min_liver_fraction` of it is liver, and it is a tumour patch
               when at least `tumor_threshold` (30 %) of its pixels are tumour

Patch coordinates follow the slice array: `location` is (row, column) of the patch's first pixel on the cropped,
resampled slice (array axes 0 and 1 of the RAS volume), and the slice index is along axis 2.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from monai.data import Dataset, get_track_meta, set_track_meta
from monai.transforms import GridPatch, SpatialPad

from livervae.errors import InputError
from livervae.labels import LIVER, TUMOR

logger = logging.getLogger(__name__)

TUMOR_THRESHOLD = 0.3


def _name(item: dict[str, Any]) -> str:
    for key in ("image", "label"):
        meta = getattr(item.get(key), "meta", None)
        if meta and meta.get("filename_or_obj"):
            return str(meta["filename_or_obj"])
    return str(item.get("case_id", "volume"))


def _plain(tensor: Any) -> torch.Tensor:
    tensor = torch.as_tensor(tensor)
    return tensor.as_tensor() if hasattr(tensor, "as_tensor") else tensor


@dataclass(frozen=True)
class PatchGrid:
    """The 2D patch grid every patch-level step shares (extraction, the patch VAE's inferer, the U-Net's AUC).

    Attributes:
        patch_size: patch side in pixels (even, >= 4).
        stride: distance between neighbouring patches (patch_size: no overlap).
        min_liver_fraction: a patch is a liver patch when at least this fraction of it is liver or tumour.
        tumor_threshold: a liver patch is a tumour patch when at least this fraction of it is tumour.

    Raises:
        InputError: settings that cannot work (e.g. a stride above the patch size leaves gaps).
    """

    patch_size: int = 16
    stride: int = 8
    min_liver_fraction: float = 0.5
    tumor_threshold: float = TUMOR_THRESHOLD

    def __post_init__(self) -> None:
        size, stride = self.patch_size, self.stride
        if isinstance(size, bool) or not isinstance(size, int) or size < 4 or size % 2:
            raise InputError(None, f"patch_size must be an even integer >= 4, got {size!r}")
        if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= size:
            raise InputError(None, f"stride must be an integer in 1..patch_size ({size}), got {stride!r}")
        if not 0.0 <= float(self.min_liver_fraction) <= 1.0:
            raise InputError(None, f"min_liver_fraction must lie in [0, 1], got {self.min_liver_fraction!r}")
        if not 0.0 < float(self.tumor_threshold) <= 1.0:
            raise InputError(None, f"tumor_threshold must lie in (0, 1], got {self.tumor_threshold!r}")


def liver_slices(volumes: Iterable[dict[str, Any]], min_liver_pixels: int = 1) -> list[dict[str, Any]]:
    """Cut preprocessed volumes into the axial slices that contain liver.

    Args:
        volumes: items with "image" and "label" of shape (1, H, W, D) on the same grid (labels 0/1/2), plus
            "patient_id" and "case_id"; e.g. a MONAI CacheDataset over the bundle's volume transforms.
        min_liver_pixels: a slice needs at least this many liver (or tumour) pixels.

    Returns:
        One dict per slice: "image" (1, H, W) float32, "label" (1, H, W) uint8, "patient_id", "case_id",
        "slice" (index along the last axis of the preprocessed volume).

    Raises:
        InputError: a volume whose image and label differ in shape, that is not (1, H, W, D), holds NaN or
            infinity, or has no liver.
    """
    slices: list[dict[str, Any]] = []
    for item in volumes:
        image, label = item["image"], item["label"]
        name = _name(item)
        if tuple(image.shape) != tuple(label.shape) or image.ndim != 4 or image.shape[0] != 1:
            raise InputError(
                name, f"image {tuple(image.shape)} and label {tuple(label.shape)} must both be (1, H, W, D)"
            )
        image_t = _plain(image).float()
        if not bool(torch.isfinite(image_t).all()):
            raise InputError(name, "image holds NaN or infinite values")
        label_t = _plain(label).round().to(torch.uint8)
        counts = (label_t[0] >= LIVER).sum(dim=(0, 1))
        if int(counts.sum()) == 0:
            raise InputError(name, "empty liver: no slice to take patches from")
        for k in torch.nonzero(counts >= max(1, int(min_liver_pixels))).flatten().tolist():
            slices.append(
                {
                    "image": image_t[..., k].contiguous(),
                    "label": label_t[..., k].contiguous(),
                    "patient_id": str(item.get("patient_id", item.get("case_id", name))),
                    "case_id": str(item.get("case_id", name)),
                    "slice": int(k),
                }
            )
    return slices


def balance_patients(slices: Sequence[dict[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """Duplicate the slices of under-represented patients so every patient has as many slices as the largest.

    Each patient's slices are repeated whole as often as fits, and the remainder is a random subset (without
    replacement, drawn from `seed`), so no slice appears more than once more than any other of its patient.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in slices:
        groups.setdefault(item["patient_id"], []).append(item)
    if not groups:
        return []
    target = max(len(items) for items in groups.values())
    rng = np.random.default_rng(seed)
    balanced: list[dict[str, Any]] = []
    for items in groups.values():
        repeats, extra = divmod(target, len(items))
        balanced.extend(items * repeats)
        if extra:
            balanced.extend(items[i] for i in sorted(rng.choice(len(items), size=extra, replace=False)))
    return balanced


def grid_patches(image: torch.Tensor, label: torch.Tensor, grid: PatchGrid = PatchGrid()) -> dict[str, torch.Tensor]:
    """The liver patches of one slice, on MONAI's `GridPatch` grid (row-major, first patch at (0, 0)).

    Args:
        image: (C, H, W) intensities.
        label: (1, H, W) 0/1/2 label map (a plain liver mask 0/1 works too: no tumour patches then).
        grid: the patch grid.

    Returns:
        "image" (N, C, p, p), "mask" (N, 1, p, p) tumour pixels as float, "location" (N, 2) long (row, column),
        "liver_fraction" (N,), "tumor_fraction" (N,), "label" (N,) long 0/1.
    """
    patch_size, stride = grid.patch_size, grid.stride
    image = _plain(image).float()
    label = _plain(label).float()
    if image.ndim != 3 or label.shape != (1, *image.shape[1:]):
        raise InputError(None, f"slice image {tuple(image.shape)} and label {tuple(label.shape)} must be (C, H, W)")
    stacked = torch.cat([image, label], dim=0)
    if min(stacked.shape[1:]) < patch_size:
        stacked = SpatialPad(spatial_size=(patch_size, patch_size), method="end")(stacked)
        stacked = _plain(stacked)
    # A float overlap of 1 - stride / patch gives MONAI's step round(patch * stride / patch) == stride exactly.
    patcher = GridPatch(patch_size=(patch_size, patch_size), overlap=1.0 - stride / patch_size)
    patches = patcher(stacked)
    locations = torch.as_tensor(np.asarray(patches.meta["location"]).T.reshape(-1, 2), dtype=torch.long)
    patches = _plain(patches)
    labels = patches[:, -1:]
    liver_fraction = (labels >= LIVER).float().mean(dim=(1, 2, 3))
    tumor_pixels = (labels == TUMOR).float().sum(dim=(1, 2, 3))
    keep = liver_fraction >= float(grid.min_liver_fraction)
    area = float(patch_size * patch_size)
    tumor_fraction = tumor_pixels / area
    return {
        "image": patches[keep, :-1].contiguous(),
        "mask": (labels[keep] == TUMOR).float(),
        "location": locations[keep],
        "liver_fraction": liver_fraction[keep],
        "tumor_fraction": tumor_fraction[keep],
        # Compared in pixels, not as a rounded fraction, so "at least 30 %" is exact (77 of 256 pixels, not 76).
        "label": (tumor_pixels[keep] >= float(grid.tumor_threshold) * area - 1e-6).long(),
    }


def extract_patches(
    slices: Sequence[dict[str, Any]],
    grid: PatchGrid = PatchGrid(),
    cache: dict[int, list[dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """Flatten slices into one dict per liver patch: "image" (C, p, p), "mask" (1, p, p), "label" (0-d long),
    "location", "tumor_fraction", "liver_fraction", "slice", "patient_id", "case_id".

    A slice that occurs several times (after `balance_patients`) is cut once and its patches repeated; pass the
    same `cache` dict to calls over the same slice objects to cut each only once across calls.
    """
    cut: dict[int, list[dict[str, Any]]] = {} if cache is None else cache
    out: list[dict[str, Any]] = []
    for item in slices:
        key = id(item)
        if key not in cut:
            patches = grid_patches(item["image"], item["label"], grid)
            cut[key] = [
                {
                    "image": patches["image"][i],
                    "mask": patches["mask"][i],
                    "label": patches["label"][i],
                    "location": patches["location"][i],
                    "tumor_fraction": float(patches["tumor_fraction"][i]),
                    "liver_fraction": float(patches["liver_fraction"][i]),
                    "slice": item["slice"],
                    "patient_id": item["patient_id"],
                    "case_id": item["case_id"],
                }
                for i in range(patches["label"].numel())
            ]
        out.extend(cut[key])
    return out


def count_patches(patches: Sequence[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per patient: how many patches and how many tumour patches (for logs and the stratification tests)."""
    counts: dict[str, dict[str, int]] = {}
    for patch in patches:
        c = counts.setdefault(patch["patient_id"], {"patches": 0, "tumor": 0})
        c["patches"] += 1
        c["tumor"] += int(patch["label"])
    return counts


def fold_data(
    volumes: Iterable[dict[str, Any]],
    grid: PatchGrid = PatchGrid(),
    val_patients: int = 1,
    balance: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Slices and patches of one cross-validation fold's training patients, split into training and validation.

    The validation patients are the first `val_patients` patients, in the order the volumes come (`lopo_split`
    orders them cyclically after the test patient), that have both tumour and non-tumour patches, so the
    validation AUC is defined; the rest train. Only the training slices are balanced.

    Returns:
        {"train_slices", "val_slices", "train_patches", "val_patches", "train_patients", "val_patients"}.

    Raises:
        InputError: too few patients, or no patient with both kinds of patch to validate on.
    """
    slices = liver_slices(volumes)
    by_patient: dict[str, list[dict[str, Any]]] = {}
    for item in slices:
        by_patient.setdefault(item["patient_id"], []).append(item)
    if len(by_patient) < val_patients + 1:
        raise InputError(None, f"need at least {val_patients + 1} training patients, got {len(by_patient)}")
    cache: dict[int, list[dict[str, Any]]] = {}
    patches = {p: extract_patches(s, grid, cache=cache) for p, s in by_patient.items()}
    eligible = [p for p, ps in patches.items() if 0 < sum(int(x["label"]) for x in ps) < len(ps)]
    chosen = eligible[:val_patients]
    if len(chosen) < val_patients or len(chosen) == len(by_patient):
        raise InputError(
            None,
            "no training patient has both tumour and non-tumour patches to validate on "
            f"(patch {grid.patch_size}, tumour threshold {grid.tumor_threshold}); "
            "use more patients or smaller patches",
        )
    train_patients = [p for p in by_patient if p not in chosen]
    train_slices = [s for p in train_patients for s in by_patient[p]]
    if balance:
        train_slices = balance_patients(train_slices, seed)
    val_slices = [s for p in chosen for s in by_patient[p]]
    result = {
        "train_slices": train_slices,
        "val_slices": val_slices,
        "train_patches": extract_patches(train_slices, grid, cache=cache),
        "val_patches": [x for p in chosen for x in patches[p]],
        "train_patients": train_patients,
        "val_patients": chosen,
    }
    for split in ("train", "val"):
        counts = count_patches(result[f"{split}_patches"])
        logger.info(
            "%s: %s",
            split,
            ", ".join(f"{p} {c['patches']} patches ({c['tumor']} tumour)" for p, c in counts.items()),
        )
    return result


def class_weights(patches: Sequence[dict[str, Any]], max_ratio: float = 20.0) -> torch.Tensor:
    """Cross-entropy weights (non-tumour 1, tumour n_negative / n_positive, at most `max_ratio`) for the
    training patches, so the rare tumour patches (often 1-5 %) carry as much weight as the rest and a 0.5
    decision threshold is meaningful."""
    positives = sum(int(p["label"]) for p in patches)
    negatives = len(patches) - positives
    ratio = negatives / positives if positives else 1.0
    return torch.tensor([1.0, float(min(max(ratio, 1.0), max_ratio))])


class PatchDataset(Dataset):
    """A MONAI `Dataset` of patch (or slice) dicts whose transforms run with metadata tracking off.

    The items are plain tensors; with tracking on, every MONAI random transform wraps each 16 x 16 patch in a
    MetaTensor, which made per-patch augmentation four times slower than the network step on the CPU.
    Tracking is switched off around each item only (use it with `DataLoader`, not the prefetching
    `ThreadDataLoader`, whose thread would share the switch with the main thread).
    """

    def _transform(self, index: int) -> Any:
        tracking = get_track_meta()
        set_track_meta(False)
        try:
            return super()._transform(index)
        finally:
            set_track_meta(tracking)
