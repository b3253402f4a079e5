"""The case's grid, its body and every organ but the liver, painted into the tissue map.

`_sample_grid` draws the case's spacing and LPS-stored affine, `_sample_body` its outline, wall thicknesses and
diaphragm domes (`_diaphragm`). `_Scene` is the tissue map under construction with the zone the liver must keep
clear of. The painters run in the order `generator.generate_case` calls them, each over what was there:
`_paint_body` (skin, fat, muscle wall, diaphragm, lungs, heart, bowel and visceral fat), `_paint_spine`,
`_paint_great_vessels` (aorta, IVC), `_paint_ribs` and `_paint_organs` (stomach, spleen, kidneys). The liver, its
gallbladder and vessels are in `liver`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from livervae.data.phantom.geometry import (
    Box,
    _ellipsoid_rho,
    _Grid,
    _rotation,
    _rotation_y,
    _rotation_z,
    _smooth_field,
)
from livervae.data.phantom.settings import PhantomConfig
from livervae.data.phantom.tissues import _T


@dataclass
class _Body:
    """Per-case body dimensions (mm) around the body centre (bx, by); world z of the diaphragm domes."""

    bx: float
    by: float
    a: float  # lateral semi-axis
    b: float  # anterior semi-axis
    post_flat: float  # posterior semi-axis = b * post_flat (lying on the table)
    fat_x: float
    fat_y: float
    muscle: float
    wobble: tuple[float, float, float, float]
    dome_r: float  # right dome, above the liver
    dome_l: float
    dome_drop: float
    dome_drop_ap: float

    def cavity_axes(self) -> tuple[float, float, float]:
        """Semi-axes of the abdominal cavity: lateral, anterior, posterior."""
        inset_y = self.fat_y + self.muscle
        return self.a - self.fat_x - self.muscle, self.b - inset_y, self.b * self.post_flat - inset_y

    def spine_y(self) -> float:
        """World y of the vertebral body's centre, about a third of the depth from the back."""
        return self.by - self.b * self.post_flat + 70.0


def _sample_grid(rng: np.random.Generator, cfg: PhantomConfig) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Draw the case's spacing and world position; return its LPS-stored affine and grid shape."""
    inplane = round(float(rng.uniform(*cfg.inplane_spacing_mm)), 4)
    thickness = float(cfg.slice_thickness_mm[int(rng.integers(len(cfg.slice_thickness_mm)))])
    spacing = (inplane, inplane, thickness)
    shape = tuple(max(16, int(round(f / s))) for f, s in zip(cfg.fov_mm, spacing))
    # Scanner-like world position of the field-of-view centre (table height, couch position).
    center = np.array([rng.uniform(-30, 30), rng.uniform(-30, 30), rng.uniform(-250, 50)])
    affine = np.diag([-inplane, -inplane, thickness, 1.0])
    # DICOM-like LPS storage: voxel (0, 0, 0) is the patient's right-anterior-inferior corner.
    affine[:3, 3] = center + np.array([1, 1, -1]) * np.array(spacing) * (np.array(shape) - 1) / 2
    return affine, shape  # type: ignore[return-value]


def _sample_body(rng: np.random.Generator, grid: _Grid, cfg: PhantomConfig) -> _Body:
    """Draw the body outline, wall thicknesses and diaphragm domes, sized from the field of view."""
    fov = cfg.fov_mm
    cx, cy = float(grid.x.mean()), float(grid.y.mean())
    a = rng.uniform(0.40, 0.46) * fov[0]
    b = rng.uniform(0.38, 0.43) * fov[1]
    z_top = float(grid.z.max())
    dome_r = z_top - rng.uniform(20.0, 30.0)
    return _Body(
        bx=cx + rng.uniform(-8, 8),
        by=cy + rng.uniform(-8, 4),
        a=a,
        b=b,
        post_flat=rng.uniform(0.88, 0.95),
        fat_x=rng.uniform(10, 25),
        fat_y=rng.uniform(8, 22),
        muscle=rng.uniform(11, 15),
        wobble=(
            rng.uniform(0.005, 0.02),
            rng.uniform(0, 2 * np.pi),
            rng.uniform(0.0, 0.012),
            rng.uniform(0, 2 * np.pi),
        ),
        dome_r=dome_r,
        dome_l=dome_r - rng.uniform(8, 18),
        dome_drop=rng.uniform(40, 55),
        dome_drop_ap=rng.uniform(15, 25),
    )


def _diaphragm(body: _Body, x2: np.ndarray, y2: np.ndarray) -> np.ndarray:
    """World z of the diaphragm over the (x, y) plane: the higher of two paraboloid domes."""
    drop_ap = body.dome_drop_ap * ((y2 - (body.by - 5.0)) / 110.0) ** 2
    right = body.dome_r - body.dome_drop * ((x2 - (body.bx + 55.0)) / 90.0) ** 2 - drop_ap
    left = body.dome_l - body.dome_drop * ((x2 - (body.bx - 60.0)) / 90.0) ** 2 - drop_ap
    # The costophrenic recesses reach at most 40 mm below the right dome (a smooth floor, no crease).
    floor = body.dome_r - 40.0
    return floor + 4.0 * np.logaddexp(0.0, (np.maximum(right, left) - floor) / 4.0)


class _Scene:
    """The tissue map under construction, the liver keep-out zone and what later steps need to know."""

    def __init__(self, grid: _Grid, body: _Body) -> None:
        self.grid = grid
        self.body = body
        self.codes = np.zeros(grid.shape, dtype=np.uint8)
        # Everything the liver must stay clear of (other organs, dilated by a few mm).
        self.keep_out = np.zeros(grid.shape, dtype=bool)
        self.x2 = grid.x[:, None] - np.float32(body.bx)
        self.y2 = grid.y[None, :] - np.float32(body.by)
        self.z_dia = _diaphragm(body, grid.x[:, None], grid.y[None, :]).astype(np.float32)
        self.cavity2 = np.zeros(grid.shape[:2], dtype=bool)
        self.cavity_inner2 = np.zeros(grid.shape[:2], dtype=bool)
        self.abdomen = np.zeros(grid.shape, dtype=bool)
        self.cavity3 = np.zeros(grid.shape, dtype=bool)

    def paint(self, box: Box, mask: np.ndarray, code: int) -> None:
        """Give the voxels of `mask` (within `box`) tissue `code`, over whatever was there."""
        self.codes[box][mask] = code

    def keep_clear(self, box: Box, mask: np.ndarray) -> None:
        """Forbid the liver the voxels of `mask` (within `box`)."""
        self.keep_out[box] |= mask


def _body_radius(scene: _Scene, a: float, b_ant: float, b_post: float) -> np.ndarray:
    """Normalised radius of a body-shaped ellipse (posteriorly flattened, lumpy) in the (x, y) plane."""
    body = scene.body
    x2, y2 = scene.x2, scene.y2
    b_eff = np.where(y2 < 0, np.float32(b_post), np.float32(b_ant))
    theta = np.arctan2(y2 / b_eff, x2 / a)
    amp3, phase3, amp5, phase5 = body.wobble
    wobble = 1.0 + amp3 * np.sin(3 * theta + phase3) + amp5 * np.sin(5 * theta + phase5)
    return np.sqrt((x2 / a) ** 2 + (y2 / b_eff) ** 2) / wobble


def _paint_body(scene: _Scene, rng: np.random.Generator) -> None:
    """Skin, subcutaneous fat, muscle wall; lungs, heart and diaphragm above, bowel and fat below."""
    body, grid = scene.body, scene.grid
    r_out = _body_radius(scene, body.a, body.b, body.b * body.post_flat)
    r_fat = _body_radius(scene, body.a - body.fat_x, body.b - body.fat_y, body.b * body.post_flat - body.fat_y)
    ca, cb_ant, cb_post = body.cavity_axes()
    r_cav = _body_radius(scene, ca, cb_ant, cb_post)
    full = (slice(None), slice(None), slice(None))
    inside = r_out < 1.0
    scene.codes[inside] = _T.SKIN
    scene.codes[inside & (r_out < 1.0 - 2.0 / body.b)] = _T.FAT
    scene.codes[r_fat < 1.0] = _T.MUSCLE
    scene.cavity2 = r_cav < 1.0
    scene.cavity3 = np.broadcast_to(scene.cavity2[:, :, None], grid.shape)
    # The liver keeps 3 mm from the muscle wall (and so from the ribs inside it).
    scene.cavity_inner2 = r_cav < 1.0 - 3.0 / min(ca, cb_post)
    z3 = grid.z[None, None, :]
    cav3 = scene.cavity2[:, :, None]
    above = z3 > (scene.z_dia + 2.5)[:, :, None]
    below = z3 <= (scene.z_dia - 2.5)[:, :, None]
    scene.abdomen = cav3 & below
    scene.paint(full, cav3 & ~below, _T.MUSCLE)  # the diaphragm
    heart2 = ((scene.x2 + 15.0) / 60.0) ** 2 + ((scene.y2 - 20.0) / 50.0) ** 2 < 1.0
    lung2 = scene.cavity2 & ~heart2 & (np.abs(scene.x2) > 20.0)
    scene.paint(full, cav3 & above & heart2[:, :, None], _T.HEART)
    scene.paint(full, above & lung2[:, :, None], _T.LUNG)
    # Bowel loops and mesenteric fat: a thresholded smooth field, about two thirds bowel.
    bowel = _smooth_field(rng, (grid.x, grid.y, grid.z), 14.0) > -0.45
    scene.paint(full, scene.abdomen & bowel, _T.BOWEL)
    scene.paint(full, scene.abdomen & ~bowel, _T.VISCERAL_FAT)


def _paint_spine(scene: _Scene, rng: np.random.Generator) -> None:
    """Vertebral bodies with discs and endplates, spinal canal, posterior arch, paraspinal muscles."""
    body, grid = scene.body, scene.grid
    yv = body.spine_y()
    rx, ry = rng.uniform(20, 24), rng.uniform(15, 18)
    period, disc, phase = rng.uniform(30, 35), rng.uniform(6, 9), rng.uniform(0, 35)
    box = grid.box((body.bx - 70, yv - 75, -np.inf), (body.bx + 70, yv + ry + 8, np.inf))
    assert box is not None
    x2 = grid.x[box[0]][:, None] - np.float32(body.bx)
    y2 = grid.y[box[1]][None, :] - np.float32(yv)
    z1 = grid.z[box[2]]
    # Nothing of the spine may stick out of the skin, whatever the body's wobble.
    in_body = scene.codes[box] != _T.AIR
    # Paraspinal muscles first: everything else of the spine paints over them.
    for side in (-1.0, 1.0):
        para = ((x2 - side * 38.0) / 26.0) ** 2 + ((y2 + 42.0) / 22.0) ** 2 < 1.0
        scene.paint(box, para[:, :, None] & in_body, _T.MUSCLE)
    rho = np.sqrt((x2 / rx) ** 2 + (y2 / ry) ** 2)
    vb = rho < 1.0
    shell = vb & (rho > 1.0 - 2.0 / ry)
    canal_y = -ry - 10.0
    r_canal = np.sqrt(x2**2 + (y2 - canal_y) ** 2)
    canal = r_canal < 9.0
    arch = (r_canal >= 9.0) & (r_canal < 15.0) & (y2 < canal_y + 4.0)
    spinous = (np.abs(x2) < 4.0) & (y2 < canal_y - 10.0) & (y2 > canal_y - 38.0)
    pos = np.mod(z1 - phase, period)
    in_disc = pos < disc
    endplate = ~in_disc & ((pos < disc + 1.5) | (pos > period - 1.5))
    vb3, shell3 = vb[:, :, None], shell[:, :, None]
    disc3, end3 = in_disc[None, None, :], endplate[None, None, :]
    scene.paint(box, vb3 & ~disc3, _T.BONE_MARROW)
    scene.paint(box, vb3 & ((shell3 & ~disc3) | end3), _T.BONE_CORTEX)
    scene.paint(box, vb3 & disc3, _T.DISC)
    scene.paint(box, (arch | spinous)[:, :, None] & in_body, _T.BONE_CORTEX)
    scene.paint(box, canal[:, :, None] & in_body, _T.CANAL)
    clear = (rho < 1.0 + 4.0 / ry) | (r_canal < 19.0) | (((x2 / 64.0) ** 2 + ((y2 + 42.0) / 26.0) ** 2) < 1.0)
    scene.keep_clear(box, np.broadcast_to(clear[:, :, None], vb3.shape[:2] + (z1.size,)))


def _paint_great_vessels(scene: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Aorta (left-anterior of the spine) and IVC (right-anterior); returns the IVC centre (x, y)."""
    body, grid = scene.body, scene.grid
    yv = body.spine_y()
    r_aorta = rng.uniform(10.0, 12.5)
    aorta = np.array([body.bx - 12.0 + rng.uniform(-3, 3), yv + 17.0 + r_aorta + 3.0])
    ivc = np.array([body.bx + 24.0 + rng.uniform(-3, 3), yv + 24.0 + rng.uniform(-2, 2)])
    ivc_r = np.array([rng.uniform(12, 15), rng.uniform(9, 11)])
    for center, radii, code, margin in ((aorta, (r_aorta, r_aorta), _T.AORTA, 3.0), (ivc, ivc_r, _T.IVC, 2.5)):
        box = grid.box((center[0] - 40, center[1] - 40, -np.inf), (center[0] + 40, center[1] + 40, np.inf))
        assert box is not None
        x2 = grid.x[box[0]][:, None] - np.float32(center[0])
        y2 = grid.y[box[1]][None, :] - np.float32(center[1])
        rho = np.sqrt((x2 / radii[0]) ** 2 + (y2 / radii[1]) ** 2)
        depth = box[2].stop - box[2].start
        scene.paint(box, np.broadcast_to((rho < 1.0)[:, :, None], rho.shape + (depth,)), code)
        clear = rho < 1.0 + margin / min(radii)
        scene.keep_clear(box, np.broadcast_to(clear[:, :, None], rho.shape + (depth,)))
    return ivc


def _paint_ribs(scene: _Scene, rng: np.random.Generator) -> None:
    """Rib arcs along the middle of the muscle wall, from beside the spine to the anterolateral wall.

    Each rib descends anteriorly (about 35-50 mm over a quarter turn), as real ribs do; cross-section a flat
    oval (6 mm in-plane, 11 mm high) with a cortical rim.
    """
    body, grid = scene.body, scene.grid
    half_muscle = body.muscle / 2.0
    am = body.a - body.fat_x - half_muscle
    bm_ant = body.b - body.fat_y - half_muscle
    bm_post = body.b * body.post_flat - body.fat_y - half_muscle
    r_mid = _body_radius(scene, am, bm_ant, bm_post)
    radial = np.sqrt(scene.x2**2 + scene.y2**2)
    dn = (r_mid - 1.0) * radial / np.maximum(r_mid, 1e-3)
    rn, rz = 3.0, 5.5
    ip, jp = np.nonzero(np.abs(dn) < rn)
    dn_p = dn[ip, jp]
    xn = scene.x2[ip, 0] / am
    yn = scene.y2[0, jp] / np.where(scene.y2[0, jp] < 0, bm_post, bm_ant)
    # Angle from the posterior midline, 0 beside the spine, pi/2 at the flank, per side.
    delta = np.arccos(np.clip(-yn / np.maximum(np.sqrt(xn**2 + yn**2), 1e-6), -1.0, 1.0))
    right = scene.x2[ip, 0] > 0
    z = grid.z[None, :]
    spacing = rng.uniform(24.0, 30.0)
    for side in (True, False):
        top = body.dome_r + 45.0 + rng.uniform(-6, 6)
        for j in range(6):
            drop = rng.uniform(35.0, 50.0)
            reach = 2.2 - 0.2 * j
            z_post = top - j * spacing
            sel = (right == side) & (delta > 0.35) & (delta < reach)
            if not sel.any():
                continue
            zc = z_post - drop * (delta[sel] / (np.pi / 2)) ** 1.3
            rho = np.sqrt((dn_p[sel, None] / rn) ** 2 + ((z - zc[:, None]) / rz) ** 2)
            p, k = np.nonzero(rho < 1.0)
            codes = np.where(rho[p, k] > 0.55, _T.RIB_CORTEX, _T.RIB_MARROW).astype(np.uint8)
            scene.codes[ip[sel][p], jp[sel][p], k] = codes


def _paint_ellipsoid_organ(
    scene: _Scene,
    center: np.ndarray,
    radii: np.ndarray,
    rotation: np.ndarray | None,
    margin_mm: float,
    clip: np.ndarray | None,
) -> tuple[Box, np.ndarray, np.ndarray] | None:
    """Evaluate an organ ellipsoid in its box; mark its dilated footprint as liver keep-out.

    Returns (box, rho, mask) with mask = rho < 1 within `clip` (a full-size boolean allowed region), or None
    when the organ lies outside the field of view.
    """
    reach = float(max(radii)) + margin_mm + 2.0
    box = scene.grid.around(center, reach)
    if box is None:
        return None
    rho = _ellipsoid_rho(scene.grid.coords(box), center, radii, rotation)
    allowed = clip[box] if clip is not None else True
    scene.keep_clear(box, (rho < 1.0 + margin_mm / float(min(radii))) & allowed)
    return box, rho, (rho < 1.0) & allowed


def _paint_organs(scene: _Scene, rng: np.random.Generator) -> None:
    """Stomach, spleen, kidneys and gallbladder (the gallbladder is placed by `_paint_liver`)."""
    body = scene.body
    ca, _, _ = body.cavity_axes()
    yv = body.spine_y()
    abdomen = scene.abdomen
    # Stomach under the left dome, gas in its anterior (non-dependent, the patient is supine) part.
    center = np.array([body.bx - 50 + rng.uniform(-6, 6), body.by + 5 + rng.uniform(-5, 5), body.dome_l - 50])
    radii = np.array([42.0, 32.0, 52.0]) * rng.uniform(0.85, 1.1, size=3)
    rot = _rotation(rng, (0.2, 0.35, 0.3))
    gas_level = rng.uniform(0.15, 0.6)
    organ = _paint_ellipsoid_organ(scene, center, radii, rot, 4.0, abdomen)
    if organ is not None:
        box, rho, mask = organ
        scene.paint(box, mask, _T.STOMACH_WALL)
        lumen = mask & (rho < 1.0 - 4.0 / float(radii.min()))
        scene.paint(box, lumen, _T.STOMACH_FLUID)
        y = scene.grid.coords(box)[1]
        scene.paint(box, lumen & (y > center[1] + gas_level * radii[1]), _T.STOMACH_GAS)
    # Spleen along the posterolateral wall on the left.
    center = np.array([body.bx - ca + 34 + rng.uniform(-5, 5), body.by - 28 + rng.uniform(-6, 6), body.dome_l - 55])
    radii = np.array([22.0, 48.0, 52.0]) * rng.uniform(0.85, 1.1, size=3)
    rot = _rotation(rng, (0.15, 0.15, 0.2)) @ _rotation_z(-0.6)
    organ = _paint_ellipsoid_organ(scene, center, radii, rot, 3.0, abdomen)
    if organ is not None:
        scene.paint(organ[0], organ[2], _T.SPLEEN)
    # Kidneys beside the spine, the right one lower (pushed down by the liver).
    z_right = body.dome_r - rng.uniform(125, 140)
    for side, z_c in ((1.0, z_right), (-1.0, z_right + rng.uniform(10, 20))):
        center = np.array([body.bx + side * rng.uniform(62, 72), yv - 5 + rng.uniform(-4, 4), z_c])
        radii = np.array([27.0, 24.0, 55.0]) * rng.uniform(0.9, 1.1, size=3)
        # Upper pole tilted medially, hilum turned anteromedially.
        rot = _rotation_z(side * rng.uniform(0.2, 0.5)) @ _rotation_y(-side * rng.uniform(0.1, 0.3))
        organ = _paint_ellipsoid_organ(scene, center, radii, rot, 5.0, scene.cavity3)
        if organ is None:
            continue
        box, rho, mask = organ
        scene.paint(box, (rho < 1.0 + 5.0 / float(radii.min())) & scene.cavity2[box[:2]][:, :, None], _T.VISCERAL_FAT)
        scene.paint(box, mask, _T.KIDNEY_CORTEX)
        scene.paint(box, mask & (rho < 0.72), _T.KIDNEY_MEDULLA)
        sinus_center = center + rot @ np.array([-side * 0.5 * radii[0], 0.0, 0.0])
        sinus = _ellipsoid_rho(scene.grid.coords(box), sinus_center, radii * np.array([0.45, 0.4, 0.5]), rot) < 1.0
        scene.paint(box, mask & sinus, _T.KIDNEY_SINUS)
