"""Liver tumours synthesised into the tissue map, after Hu et al. (CVPR 2023, "Label-free liver tumor
segmentation"): distorted ellipsoids placed inside the liver away from large vessels, textured, hypo-, iso- or
hyperdense, rim-enhancing or with a necrotic core, a capsule on some, sharp or blurred margins, 2-120 mm, single
or multifocal, pushing the parenchyma aside (mass effect).

Each lesion's label is its nominal surface clipped to the liver; its appearance is an HU offset relative to the
parenchyma (`LesionPaint.offset`) that the renderer adds on liver voxels, so a blurred margin fades into the
parenchyma beyond the label boundary as on real CT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, special

from livervae.data.synthetic.tissues import LIVER_TISSUES, Tissue

KINDS = ("hypo", "iso", "hyper", "rim")
_KIND_P = (0.5, 0.1, 0.2, 0.2)


@dataclass(frozen=True)
class SyntheticLesion:
    """One synthesised lesion as generated (world mm, RAS).

    Attributes:
        center_mm: centre in world coordinates.
        diameter_mm: nominal (volume-equivalent) diameter before clipping to the liver.
        kind: "hypo", "iso", "hyper" or "rim" (rim-enhancing).
        necrotic: whether it has a necrotic (near-water) core.
        capsule: whether it has a capsule ring.
        blurred: whether its margin is a gradual transition.
        contrast_hu: lesion minus parenchyma HU of its body (the rim's differs).
        n_voxels: its tumour voxels in the label map.
    """

    center_mm: tuple[float, float, float]
    diameter_mm: float
    kind: str
    necrotic: bool
    capsule: bool
    blurred: bool
    contrast_hu: float
    n_voxels: int


@dataclass
class LesionPaint:
    """Where and how much a lesion changes the HU: `offset` added on liver voxels of `box`."""

    box: tuple[slice, slice, slice]
    offset: np.ndarray


def _diameters(
    rng: np.random.Generator, count: int, range_mm: tuple[float, float], largest_mm: tuple[float, float]
) -> list[float]:
    """Largest diameter log-uniform in `largest_mm`; satellites 20-80 % of it, all within `range_mm`."""
    low, high = range_mm
    largest = float(np.clip(np.exp(rng.uniform(np.log(largest_mm[0]), np.log(largest_mm[1]))), low, high))
    return [largest] + [max(low, largest * rng.uniform(0.2, 0.8)) for _ in range(count - 1)]


def _contrast(rng: np.random.Generator, kind: str) -> tuple[float, float]:
    """(body, rim) HU offsets from the parenchyma for one lesion kind."""
    if kind == "hypo":
        return float(rng.uniform(-90.0, -20.0)), 0.0
    if kind == "iso":
        return float(rng.uniform(-12.0, 12.0)), 0.0
    if kind == "hyper":
        return float(rng.uniform(15.0, 70.0)), 0.0
    return float(rng.uniform(-70.0, -15.0)), float(rng.uniform(20.0, 70.0))


def _mass_effect(tissues: np.ndarray, box: tuple[slice, ...], centre_vox: np.ndarray, radius_vox: np.ndarray) -> None:
    """Push the tissue around a lesion outwards (radial pull-back) inside `box`, liver tissue only."""
    region = tissues[box]
    lo = np.array([s.start for s in box], dtype=np.float32)
    grid = np.stack(np.meshgrid(*(np.arange(n, dtype=np.float32) for n in region.shape), indexing="ij"))
    offset = grid + lo[:, None, None, None] - centre_vox[:, None, None, None]
    rho = np.sqrt(((offset / radius_vox[:, None, None, None]) ** 2).sum(axis=0))
    # Inward pull-back of up to a third of a radius, fading to nothing at 1.3 radii (the box's reach).
    push = 0.33 * np.clip((1.3 - rho) / 0.3, 0.0, 1.0) / np.maximum(rho, 0.33)
    source = grid - push * offset
    moved = ndimage.map_coordinates(region, source, order=0, mode="nearest")
    liver_like = np.isin(region, LIVER_TISSUES) & np.isin(moved, LIVER_TISSUES)
    region[liver_like] = moved[liver_like]


def synthesise_tumours(
    rng: np.random.Generator,
    tissues: np.ndarray,
    affine: np.ndarray,
    count: int,
    diameter_mm: tuple[float, float],
    largest_mm: tuple[float, float],
    blurred_fraction: float,
    model: str = "hu2023",
) -> tuple[list[SyntheticLesion], list[LesionPaint]]:
    """Place up to `count` lesions in the liver of `tissues` (modified in place: TUMOR voxels).

    `model` "simple" is the ablation's plain lesion: hypo- or hyperdense, flat, sharp, smooth ellipsoid, no rim,
    necrosis, capsule or mass effect (the draws are still made, so placement and sizes stay the same).

    Centres are drawn among liver voxels at least half a radius inside the liver and one radius from large
    vessels (portal, hepatic, vena cava); a lesion with no such place is skipped. Lesions may touch.
    """
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    liver = np.isin(tissues, (Tissue.LIVER, Tissue.HEPATIC_VEIN))
    if count <= 0 or np.count_nonzero(liver) < 500:
        return [], []
    depth = ndimage.distance_transform_edt(liver, sampling=spacing)
    vessels = np.isin(tissues, (Tissue.HEPATIC_VEIN, Tissue.PORTAL_VEIN, Tissue.VEIN))
    from_vessels = (
        ndimage.distance_transform_edt(~vessels, sampling=spacing)
        if vessels.any()
        else np.full(tissues.shape, np.inf, dtype=np.float32)
    )
    lesions: list[SyntheticLesion] = []
    paints: list[LesionPaint] = []
    for diameter in _diameters(rng, count, diameter_mm, largest_mm):
        radius = diameter / 2.0
        candidates = np.argwhere((depth >= max(0.5 * radius, 1.5)) & (from_vessels >= min(radius, 15.0)))
        if len(candidates) == 0:
            candidates = np.argwhere(depth >= max(0.5 * min(radius, depth.max()), 1.0))
            if len(candidates) == 0:
                continue
        centre = candidates[rng.integers(len(candidates))].astype(np.float32)
        radii_mm = radius * rng.uniform(0.8, 1.25, size=3)
        radii_mm *= radius / np.prod(radii_mm) ** (1.0 / 3.0)
        rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
        kind = str(rng.choice(KINDS, p=_KIND_P))
        body_hu, rim_hu = _contrast(rng, kind)
        necrotic = diameter > 25.0 and rng.random() < 0.5
        capsule = rng.random() < 0.25
        blurred = rng.random() < blurred_fraction
        margin_mm = float(rng.uniform(1.0, 4.0)) if blurred else 0.0
        roughness = float(rng.uniform(0.03, 0.15))
        capsule_hu = float(rng.uniform(-25.0, 35.0))
        texture_hu = float(rng.uniform(3.0, 15.0))
        necrosis_hu = float(rng.uniform(-110.0, -60.0))
        reach = radii_mm.max() * 1.3 + 3.0 * margin_mm + 2.0
        half = np.ceil(reach / spacing).astype(int)
        lo = np.maximum(centre.astype(int) - half, 0)
        hi = np.minimum(centre.astype(int) + half + 1, tissues.shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        if model == "simple":
            # After the box: it sets how many numbers the noise fields draw, so placements stay those of hu2023.
            kind = "hyper" if body_hu > 0 else "hypo"
            body_hu = body_hu if abs(body_hu) >= 20.0 else float(np.copysign(20.0, body_hu))
            necrotic = capsule = blurred = False
            margin_mm, roughness, texture_hu = 0.0, 0.0, 0.0
        if diameter > 8.0 and model != "simple":
            _mass_effect(tissues, box, centre, radius / spacing)
        grid = np.stack(np.meshgrid(*(np.arange(a, b, dtype=np.float32) for a, b in zip(lo, hi)), indexing="ij"))
        offset_mm = (grid - centre[:, None, None, None]) * spacing[:, None, None, None]
        local = np.einsum("ba,b...->a...", rotation.astype(np.float32), offset_mm)
        rho = np.sqrt(((local / radii_mm[:, None, None, None].astype(np.float32)) ** 2).sum(axis=0))
        # Surface irregularity on the lesion's own scale (lobulated, not speckled).
        bump_mm = max(3.0, 0.25 * radius)
        bumps = ndimage.gaussian_filter(rng.normal(size=rho.shape).astype(np.float32), sigma=bump_mm / spacing)
        bumps /= max(float(bumps.std()), 1e-6)
        rho = rho * (1.0 + roughness * bumps)
        signed_mm = (rho - 1.0) * radius  # < 0 inside the nominal surface
        region = tissues[box]
        inside = (signed_mm < 0) & np.isin(region, LIVER_TISSUES)
        if not inside.any():
            continue
        # One lesion, one component: fragments cut off by the rough surface or the liver's edge are dropped.
        parts, n_parts = ndimage.label(inside, structure=np.ones((3, 3, 3)))
        if n_parts > 1:
            sizes = np.bincount(parts.ravel())[1:]
            inside = parts == 1 + int(np.argmax(sizes))
        region[inside] = Tissue.TUMOR
        weight = 0.5 * special.erfc(signed_mm / margin_mm) if blurred else (signed_mm < 0).astype(np.float32)
        offset = np.full(rho.shape, body_hu, dtype=np.float32)
        texture = ndimage.gaussian_filter(rng.normal(size=rho.shape).astype(np.float32), sigma=1.5 / spacing)
        offset += texture_hu * texture / max(float(texture.std()), 1e-6)
        if kind == "rim":
            rim_width = max(2.0, 0.15 * radius)
            offset = np.where(signed_mm > -rim_width, rim_hu, offset)
        if necrotic:
            offset = np.where(signed_mm < -0.5 * radius, necrosis_hu, offset)
        if capsule:
            offset = np.where(np.abs(signed_mm + 0.75) < 0.75, capsule_hu, offset)
        paints.append(LesionPaint(box, (weight * offset).astype(np.float32)))
        world = affine[:3, :3] @ centre + affine[:3, 3]
        lesions.append(
            SyntheticLesion(
                center_mm=tuple(round(float(v), 3) for v in world),  # type: ignore[arg-type]
                diameter_mm=round(float(diameter), 3),
                kind=kind,
                necrotic=bool(necrotic),
                capsule=bool(capsule),
                blurred=bool(blurred),
                contrast_hu=round(body_hu, 3),
                n_voxels=int(np.count_nonzero(inside)),
            )
        )
    return lesions, paints
