"""A 3D array with its voxel-to-world affine, and the geometry checks every reader applies."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import nibabel as nib
import numpy as np

from livervae.errors import InputError

# World-coordinate tolerance (mm) for "the same grid": float32 headers round-trip to about 1e-5 mm.
GRID_ATOL_MM = 1e-3


@dataclass
class Volume:
    """Voxel data in NIfTI index order (i, j, k) with a 4×4 voxel-to-RAS affine in millimetres.

    Attributes:
        array: the voxel values, 3D.
        affine: maps voxel indices to RAS world coordinates (nibabel's convention).
        source: the file or folder it was read from, used to name it in error messages.
    """

    array: np.ndarray
    affine: np.ndarray
    source: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        """The grid size in voxels."""
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """The voxel size in millimetres along each array axis."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def axcodes(self) -> str:
        """The anatomical direction each array axis points to, e.g. 'LPS' for DICOM-style storage."""
        return "".join(nib.aff2axcodes(self.affine))

    @property
    def voxel_volume_ml(self) -> float:
        """The volume of one voxel in millilitres."""
        return float(abs(np.linalg.det(self.affine[:3, :3]))) / 1000.0

    def same_grid(self, other: "Volume", atol: float = GRID_ATOL_MM) -> bool:
        """Whether `other` has the same shape and, within `atol` mm, the same affine."""
        return self.shape == other.shape and bool(np.allclose(self.affine, other.affine, atol=atol, rtol=0))


def describe_grid_difference(a: Volume, b: Volume) -> str:
    """Say in a few words how two grids differ (shape, spacing, or origin/orientation)."""
    if a.shape != b.shape:
        return f"shape {b.shape} differs from {a.shape}"
    if not np.allclose(a.spacing, b.spacing, atol=GRID_ATOL_MM, rtol=0):
        return f"spacing {np.round(b.spacing, 4).tolist()} differs from {np.round(a.spacing, 4).tolist()}"
    max_diff = float(np.max(np.abs(a.affine - b.affine)))
    return f"affine differs by up to {max_diff:.4g} mm (origin or orientation)"


MAX_VOXELS_ENV = "LIVERVAE_MAX_VOXELS"
DEFAULT_MAX_VOXELS = 1 << 30  # a 1024^3 volume: 2 GiB as int16, and several copies of it in float32 downstream


def max_voxels() -> int:
    """The largest volume (in voxels) LiverVAE reads: $LIVERVAE_MAX_VOXELS, else 2^30."""
    raw = os.environ.get(MAX_VOXELS_ENV)
    if raw is None:
        return DEFAULT_MAX_VOXELS
    try:
        value = int(raw)
    except ValueError:
        raise InputError(None, f"{MAX_VOXELS_ENV} must be a whole number of voxels, got {raw!r}") from None
    if value < 1:
        raise InputError(None, f"{MAX_VOXELS_ENV} must be positive, got {value}")
    return value


def require_size_within_limit(shape: tuple[int, ...], source: str) -> None:
    """Refuse a volume whose voxel count exceeds `max_voxels()`, before its data is read."""
    count = int(np.prod([int(s) for s in shape], dtype=np.float64))
    limit = max_voxels()
    if count > limit:
        raise InputError(
            source,
            f"volume of shape {tuple(int(s) for s in shape)} has {count:,} voxels, above the limit of {limit:,} "
            f"(raise it with {MAX_VOXELS_ENV})",
        )


def require_3d(array: np.ndarray, source: str) -> np.ndarray:
    """Return `array` as 3D, dropping trailing singleton axes; refuse 2D, 4D+ and zero-sized data."""
    squeezed = array
    while squeezed.ndim > 3 and squeezed.shape[-1] == 1:
        squeezed = squeezed[..., 0]
    if squeezed.ndim != 3:
        raise InputError(source, f"expected a 3D volume, got {array.ndim}D data of shape {tuple(array.shape)}")
    if 0 in squeezed.shape:
        raise InputError(source, f"volume has a zero-sized dimension (shape {tuple(squeezed.shape)})")
    return squeezed


def require_finite(array: np.ndarray, source: str) -> None:
    """Refuse arrays holding NaN or infinite values."""
    if np.issubdtype(array.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            raise InputError(source, f"contains {bad} NaN or infinite voxel values")


def as_compact_ct(array: np.ndarray) -> np.ndarray:
    """Store CT values as int16 when they are whole numbers within range, else as float32."""
    if array.dtype == np.int16:
        return array
    if np.issubdtype(array.dtype, np.integer):
        lo, hi = int(array.min()), int(array.max())
        if -32768 <= lo and hi <= 32767:
            return array.astype(np.int16)
        return array.astype(np.float32)
    rounded = np.rint(array)
    if np.array_equal(rounded, array) and rounded.min() >= -32768 and rounded.max() <= 32767:
        return rounded.astype(np.int16)
    return array.astype(np.float32)
