"""Random spatial variation of a real label map: pose, patient size, smooth deformation, liver size and lobes.

Every output voxel pulls its tissue from the subject (nearest neighbour), so the map never folds or overlaps:
`source(x) = c_src + M (x - c_out) + elastic(x) + liver(x)` with `M` a random rotation and anisotropic scaling,
`elastic` a smooth random displacement (cubic interpolation of a coarse random grid) and `liver` a local scaling
around the liver and its left lobe that sets the liver's volume (drawn 1.2-2.2 L) and lobe proportions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from livervae.data.synthetic.label_maps import AnatomySubject


@dataclass(frozen=True)
class Pose:
    """The drawn spatial transform.

    Attributes:
        matrix: `M`, output mm to source mm (rotation times the inverse of the scaling).
        scale: the anatomy's scaling factors (output size / source size) per axis.
        liver_scale: extra local scaling of the liver around its centroid (1 = none).
        left_lobe_scale: extra local scaling of the left lobe around its centroid.
        elastic_mm: standard deviation of the smooth displacement (mm).
    """

    matrix: np.ndarray
    scale: np.ndarray
    liver_scale: float
    left_lobe_scale: float
    elastic_mm: float


def rotation(angles: np.ndarray) -> np.ndarray:
    """Rotation matrix Rz Ry Rx for angles (radians) about x, y and z."""
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def draw_pose(rng: np.random.Generator, subject: AnatomySubject, liver_ml_range: tuple[float, float]) -> Pose:
    """Draw rotation, size, smooth deformation strength and the liver's local scaling.

    The liver's local scaling brings its volume to a draw from `liver_ml_range` (within 0.8-1.25 linear), the
    left lobe's own scaling (0.75-1.3) varies lobe proportions.
    """
    angles = np.deg2rad(rng.uniform([-5.0, -5.0, -10.0], [5.0, 5.0, 10.0]))
    size = rng.uniform(0.88, 1.12)
    scale = size * rng.uniform(0.94, 1.06, size=3)
    matrix = rotation(angles) @ np.diag(1.0 / scale)
    target_ml = rng.uniform(*liver_ml_range)
    if subject.liver_in_view:
        base_ml = max(subject.liver_ml, 1.0) * float(np.prod(scale))
        liver_scale = float(np.clip((target_ml / base_ml) ** (1.0 / 3.0), 0.8, 1.25))
    else:
        # Only part of this subject's liver is in view, so its whole volume is unknown: vary it by +-10 %.
        liver_scale = float(np.clip(rng.uniform(0.9, 1.1), 0.8, 1.25))
    left_lobe_scale = float(rng.uniform(0.75, 1.3))
    elastic_mm = float(rng.uniform(2.0, 8.0))
    return Pose(matrix, scale, liver_scale, left_lobe_scale, elastic_mm)


def _liver_centres(subject: AnatomySubject) -> tuple[np.ndarray, np.ndarray, float]:
    """World centroid of the liver, of its left lobe (the part left of the falciform line), and its radius."""
    world = subject.liver_world
    centre = world.mean(axis=0)
    # RAS: x grows to the patient's right; the left lobe is the liver's leftmost (smallest x) quarter.
    left = world[world[:, 0] <= np.quantile(world[:, 0], 0.25)]
    radius = float(np.sqrt(((world - centre) ** 2).sum(axis=1).mean()))
    return centre, left.mean(axis=0), radius


def smooth_displacement(rng: np.random.Generator, shape: tuple[int, ...], spacing: np.ndarray, sd_mm: float):
    """A smooth random displacement field (3, *shape) in mm: control points about 50 mm apart, interpolated
    linearly (cubic costs 5x the time for no visible difference at this spacing)."""
    coarse = np.maximum(2, np.ceil(np.array(shape) * spacing / 50.0).astype(int) + 1)
    fields = []
    for _ in range(3):
        control = rng.normal(0.0, sd_mm, size=tuple(coarse)).astype(np.float32)
        zoom = [s / c for s, c in zip(shape, coarse)]
        fields.append(
            ndimage.zoom(control, zoom, order=1, mode="nearest", grid_mode=True)[: shape[0], : shape[1], : shape[2]]
        )
    return np.stack(fields)


def local_scaling(points: np.ndarray, centre: np.ndarray, radius: float, factor: float) -> np.ndarray:
    """Pull-back displacement that enlarges (factor > 1) or shrinks the region around `centre` smoothly."""
    offset = points - centre.astype(np.float32)[:, None, None, None]
    weight = np.exp(-(offset**2).sum(axis=0) / (2.0 * radius**2))
    return (-(1.0 - 1.0 / factor) * weight * offset).astype(np.float32)


def pull_back(
    subject: AnatomySubject,
    pose: Pose,
    out_affine: np.ndarray,
    out_shape: tuple[int, int, int],
    centre_out: np.ndarray,
    centre_src: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Source voxel coordinates (3, *out_shape) of every output voxel under the drawn pose."""
    ii, jj, kk = (np.arange(n, dtype=np.float32) for n in out_shape)
    axes = np.meshgrid(ii, jj, kk, indexing="ij")
    out_world = np.einsum("ab,b...->a...", out_affine[:3, :3].astype(np.float32), np.stack(axes))
    out_world += out_affine[:3, 3].astype(np.float32)[:, None, None, None]
    src = np.einsum(
        "ab,b...->a...", pose.matrix.astype(np.float32), out_world - centre_out.astype(np.float32)[:, None, None, None]
    )
    src += centre_src.astype(np.float32)[:, None, None, None]
    spacing = np.linalg.norm(out_affine[:3, :3], axis=0)
    src += smooth_displacement(rng, out_shape, spacing, pose.elastic_mm)
    liver_centre, left_centre, radius = _liver_centres(subject)
    src += local_scaling(src, liver_centre, radius * 2.0, pose.liver_scale)
    src += local_scaling(src, left_centre, radius * 0.5, pose.left_lobe_scale)
    inverse = np.linalg.inv(subject.affine).astype(np.float32)
    return np.einsum("ab,b...->a...", inverse[:3, :3], src) + inverse[:3, 3][:, None, None, None]


def forward_box(
    pose: Pose, src_lo: np.ndarray, src_hi: np.ndarray, centre_out: np.ndarray, centre_src: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The output-space bounding box of a source box under the pose's linear part (deformations ignored)."""
    corners = np.array(np.meshgrid(*zip(src_lo, src_hi), indexing="ij")).reshape(3, -1)
    out = np.linalg.inv(pose.matrix) @ (corners - centre_src[:, None]) + centre_out[:, None]
    return out.min(axis=1), out.max(axis=1)
