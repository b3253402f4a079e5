"""PNG overlays of label maps on CT slices, for reports people look at rather than read."""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from nibabel import orientations
from scipy import ndimage

from livervae.io.atomic import atomic_path
from livervae.io.volume import Volume
from livervae.labels import LESION_CONNECTIVITY, LIVER, TUMOR

LIVER_COLOUR = (0.2, 0.8, 0.2, 0.35)
TUMOR_COLOUR = (0.95, 0.15, 0.15, 0.6)
LABEL_COLOURS = ListedColormap([(0, 0, 0, 0), LIVER_COLOUR, TUMOR_COLOUR])
HU_WINDOW = (-160.0, 240.0)  # abdominal soft-tissue window (W 400, L 40): liver and lesions both visible


def _lps_transform(affine: np.ndarray) -> np.ndarray:
    return orientations.ornt_transform(orientations.io_orientation(affine), orientations.axcodes2ornt("LPS"))


def to_lps(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Reorder and flip `array` so its axes run to patient Left, Posterior, Superior (DICOM-like display order)."""
    return orientations.apply_orientation(array, _lps_transform(affine))


def lps_spacing(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The voxel spacing of the array `to_lps` returns."""
    reoriented = affine @ orientations.inv_ornt_aff(_lps_transform(affine), shape)
    return np.linalg.norm(reoriented[:3, :3], axis=0)


def largest_area_slice(mask: np.ndarray, axis: int) -> int | None:
    """The index along `axis` of the slice with the most voxels of `mask`, or None when `mask` is empty."""
    other = tuple(a for a in range(mask.ndim) if a != axis)
    per_slice = mask.sum(axis=other)
    return int(per_slice.argmax()) if per_slice.max() > 0 else None


def largest_lesion_slice(label: np.ndarray) -> int | None:
    """The axial slice (last axis) where the largest tumour component (26-connected) is widest, or None."""
    components, count = ndimage.label(label == TUMOR, structure=LESION_CONNECTIVITY)
    if count == 0:
        return None
    sizes = np.bincount(components.ravel())[1:]
    return largest_area_slice(components == int(sizes.argmax()) + 1, axis=2)


@dataclass(frozen=True)
class View:
    """One slice to draw: a plane ("axial" or "coronal") at an index of the LPS array, and why it was chosen."""

    plane: str
    index: int
    reason: str


def choose_views(chooser: np.ndarray, fallback: np.ndarray | None = None) -> list[View]:
    """The slices a reader wants first, from a 0/1/2 map in LPS order.

    The axial slice with the largest liver area, one through the largest lesion (when there is one), and the
    coronal slice with the largest liver area. `fallback` (e.g. the prediction when `chooser` is the reference)
    supplies the lesion when `chooser` has none.
    """
    liver = chooser >= LIVER
    axial = largest_area_slice(liver, axis=2)
    coronal = largest_area_slice(liver, axis=1)
    views = [
        (
            View("axial", axial, "largest liver area")
            if axial is not None
            else View("axial", chooser.shape[2] // 2, "middle slice, no liver")
        )
    ]
    lesion = largest_lesion_slice(chooser)
    if lesion is None and fallback is not None:
        lesion = largest_lesion_slice(fallback)
    if lesion is not None:
        views.append(View("axial", lesion, "largest lesion"))
    views.append(
        View("coronal", coronal, "largest liver area")
        if coronal is not None
        else View("coronal", chooser.shape[1] // 2, "middle slice, no liver")
    )
    return views


def _plane(volume: np.ndarray, view: View) -> np.ndarray:
    """The 2D array to show, rows top to bottom: axial anterior to posterior, coronal superior to inferior."""
    if view.plane == "axial":
        return volume[:, :, view.index].T
    return volume[:, view.index, :].T[::-1]


def save_overlay_png(
    image: Volume,
    label: np.ndarray | None,
    path: str | os.PathLike[str],
    title: str = "",
    reference: np.ndarray | None = None,
) -> Path:
    """Save the slices that show the case with the label map over them, and a reference map beside it.

    The views: the axial slice with the largest liver area, the axial slice through the largest lesion (when
    there is one) and the coronal slice with the largest liver area, chosen on the reference when given, else on
    the labels. With a reference the views are rows and the labels and reference columns side by side; with one
    map the views are in a row. Slices are shown in radiological convention (patient's right
    on the left; anterior up on axial, superior up on coronal) in an abdominal window stated on the figure, with
    a legend (liver green, tumour red).

    Args:
        image: the CT.
        label: 0/1/2 map on the image grid, or None for the CT alone.
        path: the PNG to write (atomically).
        title: figure title.
        reference: an optional second 0/1/2 map (e.g. ground truth) drawn in a second column.
    """
    ct = to_lps(np.asarray(image.array, dtype=np.float32), image.affine)
    maps = [
        (name, to_lps(np.asarray(m), image.affine))
        for name, m in (("prediction" if reference is not None else "labels", label), ("reference", reference))
        if m is not None
    ]
    chooser = maps[-1][1] if maps else np.zeros(ct.shape, dtype=np.uint8)
    views = choose_views(chooser, fallback=maps[0][1] if len(maps) == 2 else None)
    spacing = lps_spacing(image.affine, image.shape)
    columns = maps or [("CT", None)]
    # Each panel keeps its slice's millimetre proportions, so a coronal view of a short scan leaves no empty band.
    extent = np.asarray(ct.shape) * spacing
    ratios = [(extent[1] if view.plane == "axial" else extent[2]) / extent[0] for view in views]  # height / width
    panel = 4.6
    if len(columns) > 1:  # views down, maps across: prediction and reference side by side
        fig = Figure(figsize=(panel * len(columns), panel * sum(ratios) + 0.4 * len(views) + 1.0))
        grid = fig.add_gridspec(len(views), len(columns), height_ratios=ratios)
        cells = {(r, c): grid[r, c] for r in range(len(views)) for c in range(len(columns))}
    else:  # one map: the views in a row
        widths = [1.0 / ratio for ratio in ratios]
        fig = Figure(figsize=(0.8 * panel * sum(widths), 0.8 * panel + 1.4))
        grid = fig.add_gridspec(1, len(views), width_ratios=widths)
        cells = {(r, 0): grid[0, r] for r in range(len(views))}
    for row, view in enumerate(views):
        aspect = (spacing[1] if view.plane == "axial" else spacing[2]) / spacing[0]
        for column, (name, labels) in enumerate(columns):
            ax = fig.add_subplot(cells[row, column])
            ax.imshow(
                _plane(ct, view),
                cmap="gray",
                vmin=HU_WINDOW[0],
                vmax=HU_WINDOW[1],
                interpolation="nearest",
                aspect=aspect,
            )
            if labels is not None:
                ax.imshow(
                    _plane(labels, view), cmap=LABEL_COLOURS, vmin=0, vmax=2, interpolation="nearest", aspect=aspect
                )
            ax.set_title(f"{name}: {view.plane} slice {view.index}\n({view.reason})", fontsize=9)
            ax.axis("off")
    legend = [Patch(color=LIVER_COLOUR[:3], label="liver"), Patch(color=TUMOR_COLOUR[:3], label="tumor")]
    window = f"CT window {HU_WINDOW[0]:.0f} to {HU_WINDOW[1]:.0f} HU (W 400 / L 40), patient's right on the left"
    fig.suptitle(f"{title}\n{window}" if title else window, fontsize=10)
    if maps:
        fig.legend(handles=legend, loc="lower center", ncol=2, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.03 if maps else 0, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return Path(path)


def save_uncertainty_png(
    image: Volume, label: np.ndarray, maps: np.ndarray, path: str | os.PathLike[str], title: str = ""
) -> Path:
    """Save the label map, P(tumour) and the voxel uncertainty side by side on the slices `save_overlay_png` picks.

    Args:
        image: the CT.
        label: its 0/1/2 label map.
        maps: (3, *spatial) P(liver), P(tumour), uncertainty (`livervae.uncertainty`) on the image grid.
        path: the PNG to write (atomically).
        title: figure title (e.g. the case and its quality score).
    """
    ct = to_lps(np.asarray(image.array, dtype=np.float32), image.affine)
    labels = to_lps(np.asarray(label), image.affine)
    columns = [
        ("labels", labels, None),
        ("P(tumour)", to_lps(np.asarray(maps[1]), image.affine), "magma"),
        ("uncertainty (class entropy)", to_lps(np.asarray(maps[2]), image.affine), "viridis"),
    ]
    views = [view for view in choose_views(labels) if view.plane == "axial"]
    spacing = lps_spacing(image.affine, image.shape)
    ratio = ct.shape[1] * spacing[1] / (ct.shape[0] * spacing[0])
    fig = Figure(figsize=(4.2 * len(columns), 4.2 * ratio * len(views) + 1.2))
    grid = fig.add_gridspec(len(views), len(columns))
    for row, view in enumerate(views):
        for column, (name, values, cmap) in enumerate(columns):
            ax = fig.add_subplot(grid[row, column])
            ax.imshow(
                _plane(ct, view), cmap="gray", vmin=HU_WINDOW[0], vmax=HU_WINDOW[1], aspect=spacing[1] / spacing[0]
            )
            if cmap is None:
                ax.imshow(
                    _plane(values, view),
                    cmap=LABEL_COLOURS,
                    vmin=0,
                    vmax=2,
                    interpolation="nearest",
                    aspect=spacing[1] / spacing[0],
                )
            else:  # values near 0 stay transparent, so the CT shows where the model is sure
                shown = ax.imshow(
                    np.ma.masked_less(_plane(values, view), 0.02),
                    cmap=cmap,
                    vmin=0.0,
                    vmax=1.0,
                    alpha=0.8,
                    aspect=spacing[1] / spacing[0],
                )
                fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
            ax.set_title(f"{name}: axial slice {view.index}\n({view.reason})", fontsize=9)
            ax.axis("off")
    window = "patient's right on the left; uncertainty 0 = certain, 1 = all three classes equally likely"
    heading = textwrap.fill(title, width=140) if title else ""
    fig.suptitle(f"{heading}\n{window}" if heading else window, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    return Path(path)
