"""PNG overlays of label maps on CT slices, for reports people look at rather than read."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from nibabel import orientations

from livervae.io.atomic import atomic_path
from livervae.io.volume import Volume
from livervae.labels import LIVER, TUMOR

LABEL_COLOURS = ListedColormap([(0, 0, 0, 0), (0.2, 0.8, 0.2, 0.35), (0.95, 0.15, 0.15, 0.6)])
HU_WINDOW = (-160.0, 240.0)  # abdominal soft-tissue window: liver and lesions both visible


def _lps_transform(affine: np.ndarray) -> np.ndarray:
    return orientations.ornt_transform(orientations.io_orientation(affine), orientations.axcodes2ornt("LPS"))


def to_lps(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Reorder and flip `array` so its axes run to patient Left, Posterior, Superior (DICOM-like display order)."""
    return orientations.apply_orientation(array, _lps_transform(affine))


def lps_spacing(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The voxel spacing of the array `to_lps` returns."""
    reoriented = affine @ orientations.inv_ornt_aff(_lps_transform(affine), shape)
    return np.linalg.norm(reoriented[:3, :3], axis=0)


def most_informative_slice(label: np.ndarray) -> int:
    """The axial slice (last axis) with the most tumour, else the most liver, else the middle slice."""
    for mask in (label == TUMOR, label >= LIVER):
        per_slice = mask.sum(axis=(0, 1))
        if per_slice.max() > 0:
            return int(per_slice.argmax())
    return label.shape[2] // 2


def save_overlay_png(
    image: Volume,
    label: np.ndarray | None,
    path: str | os.PathLike[str],
    title: str = "",
    reference: np.ndarray | None = None,
) -> Path:
    """Save the most informative axial CT slice with the label map over it, and a reference map beside it.

    The slice is shown in radiological convention (patient's right on the left, anterior up) in an abdominal
    window; liver is green and tumour red.

    Args:
        image: the CT.
        label: 0/1/2 map on the image grid, or None for the CT alone.
        path: the PNG to write (atomically).
        title: figure title.
        reference: an optional second 0/1/2 map (e.g. ground truth) drawn in a second panel; it also chooses
            the slice when given.
    """
    ct = to_lps(np.asarray(image.array, dtype=np.float32), image.affine)
    maps = [
        (name, to_lps(m, image.affine)) for name, m in (("labels", label), ("reference", reference)) if m is not None
    ]
    chooser = maps[-1][1] if maps else np.zeros(ct.shape, dtype=np.uint8)
    k = most_informative_slice(chooser)
    spacing_i, spacing_j = lps_spacing(image.affine, image.shape)[:2]
    panels = maps or [("CT", None)]
    fig = Figure(figsize=(5 * len(panels), 5.4))
    for column, (name, labels) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), column)
        ax.imshow(
            ct[:, :, k].T,
            cmap="gray",
            vmin=HU_WINDOW[0],
            vmax=HU_WINDOW[1],
            interpolation="nearest",
            aspect=spacing_j / spacing_i,
        )
        if labels is not None:
            ax.imshow(
                labels[:, :, k].T,
                cmap=LABEL_COLOURS,
                vmin=0,
                vmax=2,
                interpolation="nearest",
                aspect=spacing_j / spacing_i,
            )
        ax.set_title(f"{name}, axial slice {k} (R on the left)", fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return Path(path)
