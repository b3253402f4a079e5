"""Intrahepatic vessel trees the label maps lack: hepatic veins from the inferior vena cava, portal branches from
the hilum.

TotalSegmentator labels the portal trunk and the vena cava but not the vessels inside the liver, which on
contrast CT are its brightest structures and are liver in the reference labels of LiTS and 3D-IRCADb. Each tree
is a few tapered, gently curving tubes with side branches, painted only where the tissue is liver.
"""

from __future__ import annotations

import numpy as np

from livervae.data.synthetic.tissues import Tissue


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-6)


def _paint_tube(
    tissues: np.ndarray, inverse: np.ndarray, spacing: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float
) -> None:
    """Paint liver voxels within `radius` mm of segment a-b (world mm) as hepatic vessel."""
    ia, ib = (inverse[:3, :3] @ p + inverse[:3, 3] for p in (a, b))
    pad = radius / spacing + 1.0
    lo = np.maximum(np.floor(np.minimum(ia, ib) - pad).astype(int), 0)
    hi = np.minimum(np.ceil(np.maximum(ia, ib) + pad).astype(int) + 1, tissues.shape)
    if np.any(hi <= lo):
        return
    axes = [np.arange(lo[d], hi[d], dtype=np.float32) for d in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"))
    direction = ib - ia
    length2 = float((direction**2).sum())
    t = np.einsum("a,a...->...", direction, grid - ia[:, None, None, None]) / max(length2, 1e-6)
    t = np.clip(t, 0.0, 1.0)
    nearest = ia[:, None, None, None] + direction[:, None, None, None] * t
    dist2 = (((grid - nearest) * spacing[:, None, None, None]) ** 2).sum(axis=0)
    box = tuple(slice(lo[d], hi[d]) for d in range(3))
    region = tissues[box]
    region[(dist2 <= radius**2) & (region == Tissue.LIVER)] = Tissue.HEPATIC_VEIN


def _grow(
    rng: np.random.Generator,
    tissues: np.ndarray,
    affine: np.ndarray,
    start: np.ndarray,
    direction: np.ndarray,
    length: float,
    radius: float,
    depth: int,
) -> None:
    inverse = np.linalg.inv(affine)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    step = 6.0
    point, heading = start.astype(float), _unit(direction)
    n_steps = max(1, int(length / step))
    for s in range(n_steps):
        heading = _unit(heading + rng.normal(0.0, 0.18, size=3))
        nxt = point + heading * step
        r = max(radius * (1.0 - 0.6 * s / n_steps), 0.8)
        _paint_tube(tissues, inverse, spacing, point, nxt, r)
        if depth > 0 and rng.random() < 0.22:
            side = _unit(np.cross(heading, rng.normal(size=3)) + heading)
            _grow(rng, tissues, affine, nxt, side, length * 0.45, r * 0.6, depth - 1)
        point = nxt


def paint_liver_vessels(rng: np.random.Generator, tissues: np.ndarray, affine: np.ndarray) -> int:
    """Paint hepatic veins and portal branches into the liver of a tissue map; return the vessel voxel count.

    Hepatic veins start where the vena cava meets the top of the liver and fan out (right, middle, left),
    portal branches start at the portal vein nearest the liver's centre; without those vessels in view the
    trees start from the liver's top and centre.
    """
    liver = np.argwhere(tissues == Tissue.LIVER)
    if len(liver) < 1000:
        return 0
    world = liver @ affine[:3, :3].T + affine[:3, 3]
    centre = world.mean(axis=0)
    top = world[world[:, 2] >= np.quantile(world[:, 2], 0.9)].mean(axis=0)
    ivc = np.argwhere(tissues == Tissue.VEIN)
    root = top
    if len(ivc):
        ivc_world = ivc @ affine[:3, :3].T + affine[:3, 3]
        ivc_world = ivc_world[np.abs(ivc_world[:, 2] - top[2]) < 30.0]
        if len(ivc_world):
            root = ivc_world[np.argmin(((ivc_world - top) ** 2).sum(axis=1))]
    # RAS: +x patient right, +y anterior, -z inferior.
    for direction in ((1.0, 0.4, -0.6), (0.1, 0.9, -0.5), (-0.9, 0.5, -0.4)):
        d = np.asarray(direction) + rng.normal(0.0, 0.15, size=3)
        _grow(rng, tissues, affine, root, d, rng.uniform(70.0, 130.0), rng.uniform(3.5, 6.0), 2)
    portal = np.argwhere(tissues == Tissue.PORTAL_VEIN)
    hilum = centre
    if len(portal):
        portal_world = portal @ affine[:3, :3].T + affine[:3, 3]
        hilum = portal_world[np.argmin(((portal_world - centre) ** 2).sum(axis=1))]
    for direction in ((1.0, 0.0, 0.2), (-0.8, 0.5, 0.2), (0.6, 0.3, -0.5)):
        d = np.asarray(direction) + rng.normal(0.0, 0.15, size=3)
        _grow(rng, tissues, affine, hilum, d, rng.uniform(60.0, 110.0), rng.uniform(3.0, 5.5), 2)
    return int(np.count_nonzero(tissues == Tissue.HEPATIC_VEIN))
