"""Grid and shape primitives: voxel-centre world coordinates, rotations, ellipsoids and smooth random fields.

Nothing here knows any anatomy. `_Grid` gives the RAS+ world coordinates (mm) of the voxel centres of an
axis-aligned affine and the index boxes (`Box`) of world-space regions; the shape helpers evaluate rotated
ellipsoids and smooth random fields on such boxes. Helpers that take an `rng` draw from it in a fixed order; the
caller chooses the stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Box = tuple[slice, slice, slice]


@dataclass
class _Grid:
    """World coordinates of the voxel centres along each array axis (the affine is axis-aligned)."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    spacing: tuple[float, float, float]

    @classmethod
    def from_affine(cls, affine: np.ndarray, shape: tuple[int, int, int]) -> "_Grid":
        """The voxel-centre world coordinates of an axis-aligned affine."""
        linear = affine[:3, :3]
        if not np.allclose(linear, np.diag(np.diag(linear))):
            raise ValueError("phantom grids are axis-aligned")
        axes = [(affine[a, 3] + affine[a, a] * np.arange(shape[a])).astype(np.float32) for a in range(3)]
        return cls(axes[0], axes[1], axes[2], tuple(abs(float(affine[a, a])) for a in range(3)))  # type: ignore

    @property
    def shape(self) -> tuple[int, int, int]:
        """The grid size in voxels."""
        return (self.x.size, self.y.size, self.z.size)

    def box(self, lo: np.ndarray | tuple[float, ...], hi: np.ndarray | tuple[float, ...]) -> Box | None:
        """Index slices of the voxels whose centres lie in the world-space box [lo, hi], or None if none do."""
        slices = []
        for axis, a, b in zip((self.x, self.y, self.z), lo, hi):
            inside = np.nonzero((axis >= a) & (axis <= b))[0]
            if inside.size == 0:
                return None
            slices.append(slice(int(inside[0]), int(inside[-1]) + 1))
        return tuple(slices)  # type: ignore[return-value]

    def around(self, center: np.ndarray, radius: float | np.ndarray) -> Box | None:
        """The box of voxels within `radius` (per axis) of `center`."""
        return self.box(np.asarray(center) - radius, np.asarray(center) + radius)

    def coords(self, box: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable world x, y, z of the voxels in `box`."""
        return self.x[box[0]][:, None, None], self.y[box[1]][None, :, None], self.z[box[2]][None, None, :]

    def world(self, ijk: np.ndarray) -> np.ndarray:
        """World coordinates of integer voxel indices (n, 3)."""
        return np.stack([self.x[ijk[:, 0]], self.y[ijk[:, 1]], self.z[ijk[:, 2]]], axis=1).astype(np.float64)


def _rotation(rng: np.random.Generator, max_angles_rad: tuple[float, float, float]) -> np.ndarray:
    """A random rotation (columns: the body's axes in world) from Euler angles within the given bounds."""
    ax, ay, az = (rng.uniform(-m, m) for m in max_angles_rad)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _rotation_z(angle: float) -> np.ndarray:
    """Rotation by `angle` radians about the world z axis."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rotation_y(angle: float) -> np.ndarray:
    """Rotation by `angle` radians about the world y axis."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _local(
    coords: tuple[np.ndarray, np.ndarray, np.ndarray], center: np.ndarray, rotation: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates relative to `center` in the body frame given by `rotation` (None: world axes)."""
    d = [coords[a] - np.float32(center[a]) for a in range(3)]
    if rotation is None:
        return d[0], d[1], d[2]
    r = rotation.astype(np.float32)
    return tuple(r[0, a] * d[0] + r[1, a] * d[1] + r[2, a] * d[2] for a in range(3))  # type: ignore[return-value]


def _ellipsoid_rho(
    coords: tuple[np.ndarray, np.ndarray, np.ndarray],
    center: np.ndarray,
    radii: np.ndarray,
    rotation: np.ndarray | None = None,
) -> np.ndarray:
    """Normalised ellipsoid radius: < 1 inside, 1 on the surface."""
    q = _local(coords, center, rotation)
    return np.sqrt((q[0] / radii[0]) ** 2 + (q[1] / radii[1]) ** 2 + (q[2] / radii[2]) ** 2)


def _smooth_field(rng: np.random.Generator, axes: tuple[np.ndarray, ...], scale_mm: float) -> np.ndarray:
    """A smooth random field of unit standard deviation on the grid spanned by 1D world `axes`.

    White noise on knots `scale_mm` apart is interpolated with separable Gaussian weights: three small matrix
    products, far cheaper than filtering a full-size noise volume.
    """
    weights = []
    for axis in axes:
        lo, hi = float(axis.min()) - 2 * scale_mm, float(axis.max()) + 2 * scale_mm
        knots = np.arange(lo, hi + scale_mm, scale_mm, dtype=np.float32)
        weights.append(np.exp(-0.5 * ((axis[:, None] - knots[None, :]) / scale_mm) ** 2).astype(np.float32))
    knots_noise = rng.standard_normal(tuple(w.shape[1] for w in weights), dtype=np.float32)
    field_ = np.tensordot(weights[0], knots_noise, axes=(1, 0))  # (nx, my, mz)
    field_ = np.tensordot(field_, weights[1], axes=(1, 1))  # (nx, mz, ny)
    field_ = np.tensordot(field_, weights[2], axes=(1, 1))  # (nx, ny, nz)
    field_ -= field_.mean()
    field_ /= max(float(field_.std()), 1e-6)
    return field_


def _unit(v: np.ndarray) -> np.ndarray:
    """`v` scaled to unit length."""
    return v / max(float(np.linalg.norm(v)), 1e-9)
