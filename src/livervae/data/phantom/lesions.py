"""Lesions (label 2): the burden strata, lesion planning, placement inside the liver and painting.

`_plan_lesions` draws a case's tumour burden, stratified over aligned blocks of `_STRATA` cases (`_stratum`), and
from it the lesions' count, sizes and appearance. `_place_lesions` puts them at voxel centres deep enough in the
liver and far enough apart that each is exactly one 26-connected component; `_paint_lesion` labels one and returns
its HU modulation, which `intensities._render` adds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, special

from livervae.data.phantom.anatomy import _Scene
from livervae.data.phantom.geometry import Box, _Grid, _local, _rotation
from livervae.data.phantom.settings import _BLOCK_TAG, PhantomConfig
from livervae.data.phantom.tissues import _T
from livervae.labels import LESION_CONNECTIVITY

# Lesions are 26-connected components of the tumour label, as in LiTS' lesion-wise evaluation.
# Burden strata per aligned block of cases; any 8 consecutive cases from a multiple of 8 span all of them.
_STRATA = 8


@dataclass
class _LesionPlan:
    """A lesion's drawn properties before placement (the diameter may shrink to fit)."""

    diameter: float
    kind: str
    blurred: bool
    contrast: float
    width: float
    axes: np.ndarray
    rotation: np.ndarray
    wave_dirs: np.ndarray
    wave_phases: np.ndarray
    wave_amps: np.ndarray
    necrosis: float

    @property
    def bound_factor(self) -> float:
        """Largest boundary radius over the nominal radius: the lesion lies inside this bounding sphere."""
        return float(self.axes.max() * (1.0 + self.wave_amps.sum()))


def _stratum(seed: int, index: int) -> int:
    """The burden stratum of case `index`: a permutation of 0..7 per aligned block of 8 cases."""
    block_rng = np.random.default_rng(np.random.SeedSequence([seed, index // _STRATA, _BLOCK_TAG]))
    return int(block_rng.permutation(_STRATA)[index % _STRATA])


def _plan_lesions(
    rng: np.random.Generator, cfg: PhantomConfig, seed: int, index: int
) -> tuple[float, list[_LesionPlan]]:
    """Draw the case's burden and, from it, the lesions' count, sizes and appearance."""
    stratum = _stratum(seed, index)
    tumor_free = rng.random() < cfg.tumor_free_fraction
    burden = (stratum + rng.random()) / _STRATA
    lo, hi = cfg.lesion_count
    count = lo + int(np.clip(burden + rng.normal(0.0, 0.12), 0.0, 0.999) * (hi - lo + 1))
    d_lo, d_hi = cfg.lesion_diameter_mm
    base = min(d_lo + 2.0, d_hi)
    d_max = math.exp(math.log(base) + burden * (math.log(d_hi) - math.log(base)) + rng.normal(0.0, 0.12))
    d_max = float(np.clip(d_max, d_lo, d_hi))
    # Block guarantees: the lightest case has a sub-centimetre lesion, the heaviest one over 20 mm.
    if stratum == 0:
        d_max = min(d_max, max(d_lo, 9.0))
    if stratum == _STRATA - 1:
        d_max = max(d_max, min(30.0, d_hi))
    diameters = [d_max] + [max(d_lo, d_max * rng.uniform(0.15, 0.8)) for _ in range(count - 1)] if count else []
    # The largest lesion of four strata has a fixed appearance, so every block holds all four kinds.
    forced = {1: ("hyper", False), 2: ("hypo", True), 3: ("hyper", True), 4: ("hypo", False)}
    plans = []
    for i, diameter in enumerate(diameters):
        kind = "hyper" if rng.random() < cfg.hyper_fraction else "hypo"
        blurred = bool(rng.random() < cfg.blurred_fraction)
        if i == 0 and stratum in forced:
            kind, blurred = forced[stratum]
        contrast = rng.uniform(25.0, 50.0) if kind == "hyper" else -rng.uniform(25.0, 60.0)
        width = rng.uniform(1.5, 4.0)
        axes = rng.uniform(0.85, 1.15, size=3)
        axes /= np.cbrt(np.prod(axes))
        rotation = _rotation(rng, (np.pi, np.pi, np.pi))
        wave_dirs = rng.normal(size=(3, 3))
        wave_dirs /= np.linalg.norm(wave_dirs, axis=1, keepdims=True)
        wave_phases = rng.uniform(0, 2 * np.pi, size=3)
        wave_amps = rng.uniform(0.0, 0.045, size=3)
        necrotic = kind == "hypo" and diameter >= 30.0 and rng.random() < 0.5
        necrosis = -rng.uniform(10.0, 25.0) if necrotic else 0.0
        plans.append(
            _LesionPlan(
                float(diameter),
                kind,
                blurred,
                float(contrast),
                float(width),
                axes,
                rotation,
                wave_dirs,
                wave_phases,
                wave_amps,
                float(necrosis),
            )
        )
    if tumor_free:
        return 0.0, []
    return float(burden), plans


@dataclass
class _Placed:
    """A lesion's plan with where it went (a voxel and its world centre) and its final diameter."""

    plan: _LesionPlan
    diameter: float
    center: np.ndarray
    voxel: tuple[int, int, int]


def _place_lesions(
    rng: np.random.Generator, grid: _Grid, liver: np.ndarray, box: Box, plans: list[_LesionPlan], d_min: float
) -> list[_Placed]:
    """Put lesions at voxel centres deep enough in the liver and far enough apart, largest first.

    A lesion that fits nowhere shrinks by 15 % steps down to `d_min`, then is dropped.
    """
    # Pad so the field-of-view edge counts as outside the liver.
    depth = ndimage.distance_transform_edt(np.pad(liver, 1), sampling=grid.spacing)[1:-1, 1:-1, 1:-1]
    depth = np.ascontiguousarray(depth).ravel()
    diagonal = float(np.linalg.norm(grid.spacing))
    margin = max(3.0, 1.25 * diagonal)  # every tumour voxel keeps a full 26-neighbourhood of liver
    gap = 1.5 * diagonal  # bounding spheres this far apart never touch in 26-connectivity
    offset = np.array([box[0].start, box[1].start, box[2].start])
    placed: list[_Placed] = []
    for plan in sorted(plans, key=lambda p: -p.diameter):
        diameter = plan.diameter
        while True:
            bound = plan.bound_factor * diameter / 2.0
            candidates = np.flatnonzero(depth >= bound + margin)
            if candidates.size:
                picks = candidates[rng.integers(0, candidates.size, size=48)]
                ijk = np.stack(np.unravel_index(picks, liver.shape), axis=1) + offset
                points = grid.world(ijk)
                ok = np.ones(len(points), dtype=bool)
                for other in placed:
                    need = bound + other.plan.bound_factor * other.diameter / 2.0 + gap
                    ok &= np.linalg.norm(points - other.center, axis=1) >= need
                if ok.any():
                    first = int(np.argmax(ok))
                    voxel = tuple(int(v) for v in ijk[first])
                    placed.append(_Placed(plan, diameter, points[first], voxel))  # type: ignore[arg-type]
                    break
            if diameter <= d_min + 1e-6:
                break
            diameter = max(diameter * 0.85, d_min)
    return placed


def _paint_lesion(scene: _Scene, lesion: _Placed) -> tuple[Box, np.ndarray, int]:
    """Label one lesion and return its box, HU modulation (lesion minus parenchyma) and voxel count."""
    plan, grid = lesion.plan, scene.grid
    radius = lesion.diameter / 2.0
    halo = 3.0 * plan.width if plan.blurred else 0.0
    box = grid.around(lesion.center, plan.bound_factor * radius + halo + max(grid.spacing))
    assert box is not None
    q = _local(grid.coords(box), lesion.center, plan.rotation)
    scaled = [q[a] / np.float32(radius * plan.axes[a]) for a in range(3)]
    rho = np.sqrt(scaled[0] ** 2 + scaled[1] ** 2 + scaled[2] ** 2)
    norm = np.maximum(np.sqrt(q[0] ** 2 + q[1] ** 2 + q[2] ** 2), np.float32(1e-6))
    # Slightly irregular outline: the boundary radius varies by a few percent with direction.
    delta = np.zeros_like(rho)
    for d, ph, amp in zip(plan.wave_dirs, plan.wave_phases, plan.wave_amps):
        cos = (q[0] * np.float32(d[0]) + q[1] * np.float32(d[1]) + q[2] * np.float32(d[2])) / norm
        delta += np.float32(amp) * np.sin(np.float32(np.pi) * cos + np.float32(ph))
    level = rho / (1.0 + delta)
    inside = level < 1.0
    local = tuple(v - b.start for v, b in zip(lesion.voxel, box))
    components, _ = ndimage.label(inside, structure=LESION_CONNECTIVITY)
    mask = components == components[local]
    scene.paint(box, mask, _T.TUMOR)
    if plan.blurred:
        signed_mm = (level - 1.0) * np.float32(radius)
        weight = (0.5 * special.erfc(signed_mm / np.float32(plan.width))).astype(np.float32)
    else:
        weight = mask.astype(np.float32)
    modulation = np.float32(plan.contrast) * weight
    if plan.necrosis:
        core = (0.5 * special.erfc((level - 0.5) * np.float32(radius) / np.float32(3.0))).astype(np.float32)
        modulation += np.float32(plan.necrosis) * core
    return box, modulation, int(mask.sum())
