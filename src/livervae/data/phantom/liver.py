"""The liver, the gallbladder in its fossa, and its intrahepatic vessel trees, painted into the tissue map.

`_paint_liver` blends three deformed ellipsoids into a liver of a drawn volume, clipped by the diaphragm, the
abdominal wall and the zone the other organs keep clear (`anatomy._Scene.keep_out`). `_vessel_segments` grows the
portal and hepatic vein trees (`_grow_tree`) from the liver's landmarks, and `_paint_vessels` paints them inside
the liver only, except the extrahepatic portal trunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from livervae.data.phantom.anatomy import _Body, _paint_ellipsoid_organ, _Scene
from livervae.data.phantom.geometry import Box, _ellipsoid_rho, _local, _rotation, _unit
from livervae.data.phantom.tissues import _T


@dataclass
class _Liver:
    """The painted liver: its box, mask within the box, and landmarks for the vessel trees."""

    box: Box
    mask: np.ndarray
    right_center: np.ndarray
    right_radii: np.ndarray
    left_center: np.ndarray
    scale: float


def _paint_liver(scene: _Scene, rng: np.random.Generator) -> _Liver:
    """Soft union of three deformed ellipsoids on the patient's right, clear of every other organ.

    The gallbladder is painted here too because it sits in a fossa of the right lobe.
    """
    body, grid = scene.body, scene.grid
    ca, cb_ant, cb_post = body.cavity_axes()
    s = rng.uniform(0.92, 1.08)
    target_ml = rng.uniform(1350.0, 2150.0)
    # The lobes are sized from the abdominal cavity so the wall only flattens their outer surface.
    # RAS+: +x is the patient's right, so the right lobe sits at x > bx; the left lobe crosses the midline.
    right_r = np.array([0.6 * ca, 0.55 * (cb_ant + cb_post), 78.0 * s]) * rng.uniform(0.93, 1.03, size=3)
    right_c = np.array(
        [body.bx + ca - 0.85 * right_r[0], body.by + 0.5 * (cb_ant - cb_post) - 5.0, body.dome_r - 0.75 * right_r[2]]
    ) + rng.uniform(-4, 4, size=3)
    tip_r = right_r * np.array([0.6, 0.5, 0.5]) * rng.uniform(0.9, 1.1, size=3)
    tip_c = right_c + np.array([0.15, -0.3, -0.6]) * right_r + rng.uniform(-4, 4, size=3)
    left_r = np.array([0.5 * ca, 0.45 * cb_ant, 38.0 * s]) * rng.uniform(0.88, 1.1, size=3)
    left_c = np.array([body.bx - 0.15 * ca, body.by + 0.45 * cb_ant, body.dome_r - 40.0 * s]) + rng.uniform(
        -4, 4, size=3
    )
    # Low-frequency deformation: a few long plane waves (wavelength 80-160 mm) of the normalised radius.
    directions = rng.normal(size=(4, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    wavenumbers = 2 * np.pi / rng.uniform(80.0, 160.0, size=4)
    phases = rng.uniform(0, 2 * np.pi, size=4)
    amplitudes = rng.uniform(-0.06, 0.06, size=4)
    # Gallbladder (absent after cholecystectomy) under the right lobe, anterior and medial.
    has_gallbladder = rng.random() < 0.85
    gb_c = right_c + np.array([-0.42, 0.5, -0.62]) * right_r + rng.uniform(-4, 4, size=3)
    gb_r = np.array([14.0, 16.0, 32.0]) * rng.uniform(0.8, 1.1, size=3)
    gb_rot = _rotation(rng, (0.6, 0.3, 0.3))
    if has_gallbladder:
        organ = _paint_ellipsoid_organ(scene, gb_c, gb_r, gb_rot, 2.5, scene.abdomen)
        if organ is not None:
            scene.paint(organ[0], organ[2], _T.GALLBLADDER)

    centers = (right_c, tip_c, left_c)
    radii = (right_r, tip_r, left_r)
    lo = np.min([c - 1.6 * r for c, r in zip(centers, radii)], axis=0)
    hi = np.max([c + 1.6 * r for c, r in zip(centers, radii)], axis=0)
    box = grid.box(lo, hi)
    if box is None:
        raise ValueError("the field of view misses the liver; enlarge PhantomConfig.fov_mm")
    coords = grid.coords(box)
    # Soft minimum of the normalised radii (k = 0.12) blends the lobes without creases.
    k = np.float32(0.12)
    rhos = [_ellipsoid_rho(coords, c, r) for c, r in zip(centers, radii)]
    soft = -k * np.logaddexp(np.logaddexp(-rhos[0] / k, -rhos[1] / k), -rhos[2] / k)
    deform = np.zeros_like(soft)
    for d, kw, ph, amp in zip(directions, wavenumbers, phases, amplitudes):
        arg = (coords[0] * np.float32(d[0] * kw) + coords[1] * np.float32(d[1] * kw)) + coords[2] * np.float32(
            d[2] * kw
        )
        deform += np.float32(amp) * np.sin(arg + np.float32(ph))
    # The anterior-inferior edge is thin (a wedge in sagittal section): push the field up there.
    bevel = (coords[1] - np.float32(right_c[1])) / np.float32(right_r[1]) - (
        coords[2] - np.float32(right_c[2])
    ) / np.float32(right_r[2])
    # Keep the whole liver above the bottom of the field of view, as a scan protocol would: the field rises
    # smoothly over the lowest 35 mm (a rounded tip, not a flat cut), and nothing is allowed in the last 6 mm.
    z_floor = np.float32(float(grid.z.min()))
    near_bottom = np.maximum((z_floor + np.float32(35.0) - coords[2]) / np.float32(25.0), np.float32(0.0))
    shape_field = soft - deform + np.float32(0.15) * np.maximum(bevel, np.float32(0.0)) + near_bottom**2
    above_bottom = coords[2] > z_floor + np.float32(6.0)
    allowed = scene.abdomen[box] & scene.cavity_inner2[box[:2]][:, :, None] & ~scene.keep_out[box] & above_bottom
    # Pick the level set that gives the drawn volume (within limits, so the shape stays organ-like).
    values = shape_field[allowed]
    wanted = int(round(target_ml / (float(np.prod(grid.spacing)) / 1000.0)))
    level = float(np.partition(values, min(wanted, values.size - 1))[min(wanted, values.size - 1)])
    mask = allowed & (shape_field < np.float32(np.clip(level, 0.85, 1.25)))
    components, count = ndimage.label(mask)
    if count == 0:
        raise ValueError("the phantom liver came out empty")
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    mask = components == int(np.argmax(sizes))
    scene.paint(box, mask, _T.LIVER)
    return _Liver(box, mask, right_c, right_r, left_c, float(s))


@dataclass
class _Segment:
    """A tapered tube from a (radius r0) to b (radius r1)."""

    a: np.ndarray
    b: np.ndarray
    r0: float
    r1: float
    code: int
    extrahepatic: bool = False


def _grow_tree(
    rng: np.random.Generator,
    start: np.ndarray,
    direction: np.ndarray,
    radius: float,
    length: float,
    depth: int,
    code: int,
    out: list[_Segment],
) -> None:
    """Append a bifurcating vessel tree: each branch splits in two thinner, shorter, diverging children."""
    direction = _unit(_unit(direction) + rng.normal(0.0, 0.15, size=3))
    end = start + direction * length
    r_end = max(radius * 0.85, 1.5)
    out.append(_Segment(start, end, radius, r_end, code))
    if depth == 0 or r_end <= 1.6:
        return
    axis = _unit(np.cross(direction, rng.normal(size=3)))
    for sign in (1.0, -1.0):
        angle = sign * rng.uniform(0.35, 0.75)
        # Rodrigues' rotation of the parent direction about a random perpendicular axis.
        child = direction * math.cos(angle) + np.cross(axis, direction) * math.sin(angle)
        child_r = max(r_end * rng.uniform(0.68, 0.8), 1.5)
        _grow_tree(rng, end, child, child_r, length * rng.uniform(0.65, 0.85), depth - 1, code, out)


def _vessel_segments(rng: np.random.Generator, liver: _Liver, body: _Body, ivc_xy: np.ndarray) -> list[_Segment]:
    """Portal vein (trunk entering at the hilum, right and left branches) and three hepatic veins."""
    s = liver.scale
    rc, rr, lc = liver.right_center, liver.right_radii, liver.left_center
    hilum = rc + np.array([-0.42, 0.12, -0.42]) * rr
    segments: list[_Segment] = []
    trunk_start = hilum + np.array([-30.0, -8.0, -40.0]) + rng.uniform(-5, 5, size=3)
    segments.append(_Segment(trunk_start, hilum, 5.0, 4.6, _T.PORTAL, extrahepatic=True))
    _grow_tree(rng, hilum, rc + np.array([20.0, 0.0, 0.0]) - hilum, 4.5, 40 * s, 3, _T.PORTAL, segments)
    _grow_tree(rng, hilum, lc - hilum, 4.0, 45 * s, 3, _T.PORTAL, segments)
    confluence = np.array([ivc_xy[0], ivc_xy[1] + 4.0, body.dome_r - 22.0])
    _grow_tree(rng, confluence, rc + np.array([25.0, 10.0, -20.0]) - confluence, 4.5, 60 * s, 3, _T.HEPATIC, segments)
    _grow_tree(rng, confluence, rc + np.array([-30.0, 45.0, -25.0]) - confluence, 4.0, 55 * s, 3, _T.HEPATIC, segments)
    _grow_tree(rng, confluence, lc - confluence, 3.5, 48 * s, 2, _T.HEPATIC, segments)
    return segments


def _paint_vessels(scene: _Scene, segments: list[_Segment]) -> None:
    """Paint tubes inside the liver (labelled liver) and the extrahepatic trunk in the surrounding fat/bowel."""
    grid = scene.grid
    for seg in segments:
        reach = max(seg.r0, seg.r1) + 1.0
        box = grid.box(np.minimum(seg.a, seg.b) - reach, np.maximum(seg.a, seg.b) + reach)
        if box is None:
            continue
        x, y, z = _local(grid.coords(box), seg.a, None)
        v = (seg.b - seg.a).astype(np.float32)
        t = np.clip((x * v[0] + y * v[1] + z * v[2]) / np.float32(v @ v), 0.0, 1.0)
        dist2 = (x - t * v[0]) ** 2 + (y - t * v[1]) ** 2 + (z - t * v[2]) ** 2
        radius = np.float32(seg.r0) + t * np.float32(seg.r1 - seg.r0)
        tube = dist2 < radius**2
        codes = scene.codes[box]
        hepatic = (codes == _T.LIVER) | (codes == _T.PORTAL) | (codes == _T.HEPATIC)
        scene.paint(box, tube & hepatic, seg.code)
        if seg.extrahepatic:
            scene.paint(box, tube & ((codes == _T.VISCERAL_FAT) | (codes == _T.BOWEL)), _T.PORTAL_EXTRA)
