"""Synthetic abdominal CT phantoms with exact liver/tumour labels and a matching clinical sheet row.

The phantom cohort lets every stage of the pipeline (readers, writer, training, evaluation, weak supervision)
run and be checked against known answers without patient data.

Geometry:
    Every structure is defined in RAS+ world coordinates (millimetres) computed from the case's affine, so the
    storage orientation never matters. In nibabel's RAS+ convention x grows towards the patient's Right,
    y towards Anterior and z towards Superior: `nibabel.aff2axcodes(np.diag([-1, -1, 1, 1]))` is ('L', 'P', 'S')
    because increasing i there lowers x, i.e. walks to the patient's Left. The volume is stored DICOM-like,
    with affine `diag(-sx, -sy, sz)` and a random origin (`Volume.axcodes == "LPS"`). In-plane spacing is drawn
    per case (default 1.3-1.7 mm) and the slice thickness from a few choices (default 2.0, 2.5, 3.0 mm), so the
    grid is anisotropic; the field of view is fixed (default 360 x 280 x 180 mm, x by y by z).

Anatomy (HU in a portal-venous phase):
    body: a slightly lumpy elliptical cross-section, flattened posteriorly, with skin (20), subcutaneous fat
    (about -100) and a muscle ring (40-50) around the abdominal cavity; air (-1000) outside.
    cavity: a mix of bowel (25-45) and visceral fat (-90); above the diaphragm (two domes, the right one higher)
    the lung bases (about -860, textured) beside the heart (50), separated from the abdomen by 5 mm of muscle;
    the lungs reach at most 40 mm below the right dome, so all lung lies above the liver's centroid.
    liver: a soft union of three ellipsoids (right lobe, its posterior-inferior tip, a smaller left lobe crossing
    the midline) sized from the abdominal cavity, with a low-frequency deformation and a thin anterior-inferior
    edge, clipped by the diaphragm, the abdominal wall and every neighbouring organ (each kept a few mm away),
    on the patient's right. Its level set is chosen to approach a volume drawn from 1,350-2,150 mL, within
    limits that keep the shape organ-like, so small abdomens get smaller livers: about 950-1,750 mL (mean about
    1,400 mL) in practice. Parenchyma 100-130 HU drawn per case with a mild smooth texture.
    vessels: tapered tubular trees of portal and hepatic vein branches (radius 1.5-5 mm, 50-90 HU above the
    parenchyma) inside the liver, labelled liver as in LiTS; the extrahepatic portal trunk is background.
    neighbours: spleen (left, parenchyma +0-15), kidneys (posterior, cortex 150-180, medulla 20-40 lower,
    sinus fat), stomach (wall, fluid, anterior gas cap), gallbladder (10), aorta (150-250), IVC (120-160),
    vertebral column (cancellous 220-280, cortical shell and endplates 650-750, discs 80, spinal canal),
    paraspinal muscles, and rib arcs in the body wall descending anteriorly.
    appearance: a slight Gaussian blur (partial volume, `PhantomConfig.blur_sigma_vox`) then white Gaussian noise
    (sigma drawn per case, default 8-18 HU); stored as int16 HU clipped to [-1024, 3071].

Lesions (label 2):
    A per-case tumour burden in [0, 1) sets the lesion count (from `PhantomConfig.lesion_count`) and the largest
    diameter (7 mm at burden 0 to 60 mm at burden 1, log-linear); further lesions are satellites of 15-80 % of
    it (at least 5 mm). Lesions are slightly irregular ellipsoids, hypodense (-60 to -25 HU relative to the
    parenchyma, large ones sometimes with a darker necrotic core) or hyperdense (+25 to +50 HU), with a sharp
    margin or a blurred one (an erfc transition 1.5-4 mm wide; the label stays at the nominal boundary).
    Each lesion is centred on a voxel centre, kept at least `1.25 x` the voxel diagonal inside the liver and
    a voxel diagonal-and-more away from every other lesion, so each is exactly one 26-connected component of
    label 2 whose size is `PhantomLesion.n_voxels`, and every tumour voxel's neighbours are liver or tumour.
    Burden is stratified over aligned blocks of 8 cases (a permutation drawn from the seed and block number),
    so any cohort of 8 or more starting at index 0 spans small to large burden and, by construction (with the
    default lesion settings and no tumour-free cases), holds a lesion under 10 mm (the lightest stratum caps its
    lesions at 9 mm), one over 20 mm (the heaviest starts at 30 mm or more), and hypo- and hyperdense, blurred
    and sharp lesions (the largest lesion of four strata has a fixed appearance).

Determinism:
    Case k draws its geometry, intensities and lesions from
    `np.random.default_rng(np.random.SeedSequence([seed, k]))`, its textures and noise from
    `[seed, k, tag]` and its burden stratum from a permutation drawn from `[seed, k // 8, tag]` (non-zero tags
    keep the streams apart), so it is identical whatever the cohort size: a cohort of 4 is a prefix of a
    cohort of 8. Its clinical row uses a further stream, so the row never changes the image. Textures and
    noise draw as many numbers as the grid has voxels, and lesion placement draws last, so the same
    (seed, index) under `PhantomConfig.small()` gives the same patient at a coarser spacing, up to where lesion
    placement draws diverge.

Clinical rows carry the real HCC-TACE-Seg column names and codings, derived from the truth by simple clinical
rules (TNM/BCLC from lesion count, size and a burden-dependent vascular invasion, CLIP from Child-Pugh,
morphology, AFP >= 400 and portal invasion, AFP log-normal rising with tumour volume), with about 7 % of the
optional items left missing, so `livervae.data.clinical.compute_severity` follows the tumour burden.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage, special

from livervae.data.case import Case
from livervae.io.volume import Volume
from livervae.labels import BACKGROUND, LESION_CONNECTIVITY, LIVER, TUMOR

HU_MIN, HU_MAX = -1024, 3071
# Lesions are 26-connected components of the tumour label, as in LiTS' lesion-wise evaluation.
# Burden strata per aligned block of cases; any 8 consecutive cases from a multiple of 8 span all of them.
_STRATA = 8
# Non-zero tags keep the auxiliary streams apart from the case stream (SeedSequence pads entropy with zeros).
_BLOCK_TAG = 0xB10C
_CLINICAL_TAG = 0xC11C
_OPTIONAL_MISSING_P = 0.07


class _T:
    """Tissue codes of the internal tissue map: each voxel belongs to exactly one, painted in priority order."""

    AIR = 0
    SKIN = 1
    FAT = 2
    MUSCLE = 3
    VISCERAL_FAT = 4
    BOWEL = 5
    LUNG = 6
    HEART = 7
    KIDNEY_CORTEX = 8
    KIDNEY_MEDULLA = 9
    KIDNEY_SINUS = 10
    SPLEEN = 11
    STOMACH_WALL = 12
    STOMACH_FLUID = 13
    STOMACH_GAS = 14
    GALLBLADDER = 15
    AORTA = 16
    IVC = 17
    PORTAL_EXTRA = 18
    LIVER = 19
    PORTAL = 20
    HEPATIC = 21
    TUMOR = 22
    BONE_MARROW = 23
    BONE_CORTEX = 24
    DISC = 25
    CANAL = 26
    RIB_MARROW = 27
    RIB_CORTEX = 28
    COUNT = 29


_LIVER_CODES = (_T.LIVER, _T.PORTAL, _T.HEPATIC, _T.TUMOR)
_MASK_CODES: dict[str, tuple[int, ...]] = {
    "liver": _LIVER_CODES,
    "tumor": (_T.TUMOR,),
    "vessels": (_T.PORTAL, _T.HEPATIC),
    "portal_vein_extrahepatic": (_T.PORTAL_EXTRA,),
    "spleen": (_T.SPLEEN,),
    "kidneys": (_T.KIDNEY_CORTEX, _T.KIDNEY_MEDULLA, _T.KIDNEY_SINUS),
    "stomach": (_T.STOMACH_WALL, _T.STOMACH_FLUID, _T.STOMACH_GAS),
    "stomach_gas": (_T.STOMACH_GAS,),
    "gallbladder": (_T.GALLBLADDER,),
    "aorta": (_T.AORTA,),
    "ivc": (_T.IVC,),
    "spine": (_T.BONE_MARROW, _T.BONE_CORTEX, _T.DISC, _T.CANAL),
    "ribs": (_T.RIB_MARROW, _T.RIB_CORTEX),
    "lungs": (_T.LUNG,),
    "heart": (_T.HEART,),
    "muscle": (_T.MUSCLE,),
    "fat": (_T.FAT, _T.VISCERAL_FAT),
}


@dataclass(frozen=True)
class PhantomConfig:
    """What varies between phantom cohorts: grid, lesion statistics, contrast and noise.

    Attributes:
        fov_mm: field of view (x, y, z) in mm; the grid size follows from the drawn spacing.
        inplane_spacing_mm: range of the in-plane (x = y) spacing, drawn per case.
        slice_thickness_mm: slice spacing choices, one drawn per case.
        lesion_count: inclusive range of the lesion count; the burden draw picks within it.
        lesion_diameter_mm: smallest and largest nominal lesion diameter.
        tumor_free_fraction: probability that a case has no lesion at all.
        hyper_fraction: probability that a lesion is hyperdense rather than hypodense.
        blurred_fraction: probability that a lesion has a blurred margin.
        noise_sd_hu: range of the Gaussian noise standard deviation, drawn per case.
        parenchyma_hu: range of the liver parenchyma's mean HU, drawn per case.
        vessel_contrast_hu: range of the vessel-minus-parenchyma contrast, drawn per vessel tree.
        blur_sigma_vox: Gaussian blur (voxels) applied before the noise, standing in for partial volume.
    """

    fov_mm: tuple[float, float, float] = (360.0, 280.0, 180.0)
    inplane_spacing_mm: tuple[float, float] = (1.3, 1.7)
    slice_thickness_mm: tuple[float, ...] = (2.0, 2.5, 3.0)
    lesion_count: tuple[int, int] = (1, 6)
    lesion_diameter_mm: tuple[float, float] = (5.0, 60.0)
    tumor_free_fraction: float = 0.0
    hyper_fraction: float = 0.3
    blurred_fraction: float = 0.45
    noise_sd_hu: tuple[float, float] = (8.0, 18.0)
    parenchyma_hu: tuple[float, float] = (100.0, 130.0)
    vessel_contrast_hu: tuple[float, float] = (50.0, 90.0)
    blur_sigma_vox: float = 0.5

    def __post_init__(self) -> None:
        def ordered(name: str, pair: tuple[float, float], low: float) -> None:
            if len(pair) != 2 or not low <= pair[0] <= pair[1]:
                raise ValueError(f"PhantomConfig.{name} must be an ordered pair >= {low}, got {pair!r}")

        if len(self.fov_mm) != 3 or min(self.fov_mm) < 100.0:
            raise ValueError(f"PhantomConfig.fov_mm must be three sizes of at least 100 mm, got {self.fov_mm!r}")
        ordered("inplane_spacing_mm", self.inplane_spacing_mm, 0.2)
        ordered("lesion_count", self.lesion_count, 0)
        ordered("lesion_diameter_mm", self.lesion_diameter_mm, 2.0)
        ordered("noise_sd_hu", self.noise_sd_hu, 0.0)
        ordered("parenchyma_hu", self.parenchyma_hu, -100.0)
        ordered("vessel_contrast_hu", self.vessel_contrast_hu, 0.0)
        if not self.slice_thickness_mm or min(self.slice_thickness_mm) < 0.2:
            raise ValueError(f"PhantomConfig.slice_thickness_mm must be positive, got {self.slice_thickness_mm!r}")
        for name in ("tumor_free_fraction", "hyper_fraction", "blurred_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"PhantomConfig.{name} must lie in [0, 1], got {getattr(self, name)!r}")
        if self.blur_sigma_vox < 0:
            raise ValueError(f"PhantomConfig.blur_sigma_vox must be >= 0, got {self.blur_sigma_vox!r}")

    @classmethod
    def small(cls) -> "PhantomConfig":
        """The same anatomy on a coarse grid (about 3 mm in-plane, 4-5 mm slices) for fast tests."""
        return cls(inplane_spacing_mm=(2.8, 3.2), slice_thickness_mm=(4.0, 5.0))


@dataclass(frozen=True)
class PhantomLesion:
    """One synthetic lesion as generated.

    Attributes:
        center_mm: its centre (a voxel centre) in RAS world coordinates.
        diameter_mm: nominal (volume-equivalent) diameter of its unperturbed ellipsoid.
        kind: "hypo" or "hyper" dense relative to the parenchyma.
        blurred: whether its margin is a gradual intensity transition rather than a step.
        contrast_hu: lesion minus parenchyma HU before blur and noise (a necrotic core is darker still).
        n_voxels: size of its label-2 connected component.
    """

    center_mm: tuple[float, float, float]
    diameter_mm: float
    kind: str
    blurred: bool
    contrast_hu: float
    n_voxels: int


@dataclass(frozen=True)
class PhantomTruth:
    """The known answers of one phantom case (JSON-serialisable through `dataclasses.asdict`).

    Attributes:
        liver_voxels: voxels labelled liver or tumour (label >= 1); liver_ml is their volume.
        tumor_voxels: voxels labelled tumour; tumor_ml is their volume.
        vessel_voxels: intrahepatic vessel voxels (labelled liver, not tumour).
        parenchyma_hu: the liver parenchyma's mean HU before texture, blur and noise.
        noise_sd: standard deviation of the added noise in HU.
        vessel_contrast_hu: portal vein minus parenchyma HU (hepatic veins have their own draw).
        burden: the per-case draw in [0, 1) behind lesion count and size (0 for tumour-free cases).
        liver_centroid_mm: centroid of label >= 1 in RAS world coordinates.
        diaphragm_dome_z_mm: world z of the right diaphragm dome (the top of the liver lies just below).
    """

    case_id: str
    seed: int
    index: int
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    liver_voxels: int
    tumor_voxels: int
    vessel_voxels: int
    liver_ml: float
    tumor_ml: float
    parenchyma_hu: float
    noise_sd: float
    vessel_contrast_hu: float
    burden: float
    liver_centroid_mm: tuple[float, float, float]
    diaphragm_dome_z_mm: float
    lesions: tuple[PhantomLesion, ...] = field(default_factory=tuple)


# ----------------------------------------------------------------------------------------------------------------
# Grid and shape primitives
# ----------------------------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------------------------
# Case geometry
# ----------------------------------------------------------------------------------------------------------------


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


def _rotation_z(angle: float) -> np.ndarray:
    """Rotation by `angle` radians about the world z axis."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rotation_y(angle: float) -> np.ndarray:
    """Rotation by `angle` radians about the world y axis."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


# ----------------------------------------------------------------------------------------------------------------
# Liver and its vessels
# ----------------------------------------------------------------------------------------------------------------


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


def _unit(v: np.ndarray) -> np.ndarray:
    """`v` scaled to unit length."""
    return v / max(float(np.linalg.norm(v)), 1e-9)


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


# ----------------------------------------------------------------------------------------------------------------
# Lesions
# ----------------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------------
# Intensities
# ----------------------------------------------------------------------------------------------------------------


def _sample_hu(rng: np.random.Generator, cfg: PhantomConfig) -> tuple[np.ndarray, dict[str, float]]:
    """The per-case mean HU of every tissue code, and the draws the truth reports."""
    parenchyma = rng.uniform(*cfg.parenchyma_hu)
    portal = rng.uniform(*cfg.vessel_contrast_hu)
    hepatic = rng.uniform(*cfg.vessel_contrast_hu)
    cortex = rng.uniform(150.0, 180.0)
    lut = np.zeros(_T.COUNT, dtype=np.float32)
    lut[_T.AIR] = -1000.0
    lut[_T.SKIN] = 20.0
    lut[_T.FAT] = -100.0 + rng.uniform(-10, 10)
    lut[_T.MUSCLE] = rng.uniform(40.0, 50.0)
    lut[_T.VISCERAL_FAT] = -90.0 + rng.uniform(-10, 10)
    lut[_T.BOWEL] = rng.uniform(25.0, 45.0)
    lut[_T.LUNG] = -860.0 + rng.uniform(-20, 20)
    lut[_T.HEART] = 50.0
    lut[_T.KIDNEY_CORTEX] = cortex
    lut[_T.KIDNEY_MEDULLA] = cortex - rng.uniform(20.0, 40.0)
    lut[_T.KIDNEY_SINUS] = -80.0
    lut[_T.SPLEEN] = parenchyma + rng.uniform(0.0, 15.0)
    lut[_T.STOMACH_WALL] = 50.0
    lut[_T.STOMACH_FLUID] = rng.uniform(5.0, 20.0)
    lut[_T.STOMACH_GAS] = -980.0
    lut[_T.GALLBLADDER] = rng.uniform(0.0, 20.0)
    lut[_T.AORTA] = rng.uniform(150.0, 250.0)
    lut[_T.IVC] = rng.uniform(120.0, 160.0)
    lut[_T.PORTAL_EXTRA] = parenchyma + portal
    lut[_T.LIVER] = parenchyma
    lut[_T.PORTAL] = parenchyma + portal
    lut[_T.HEPATIC] = parenchyma + hepatic
    lut[_T.TUMOR] = parenchyma  # lesion contrast is added per lesion
    lut[_T.BONE_MARROW] = lut[_T.RIB_MARROW] = rng.uniform(220.0, 280.0)
    lut[_T.BONE_CORTEX] = lut[_T.RIB_CORTEX] = rng.uniform(650.0, 750.0)
    lut[_T.DISC] = 80.0
    lut[_T.CANAL] = 20.0
    draws = {
        "parenchyma_hu": float(parenchyma),
        "vessel_contrast_hu": float(portal),
        "noise_sd": float(rng.uniform(*cfg.noise_sd_hu)),
        "liver_texture_hu": float(rng.uniform(3.0, 6.0)),
    }
    return lut, draws


def _render(
    scene: _Scene,
    lut: np.ndarray,
    draws: dict[str, float],
    lesions: list[tuple[Box, np.ndarray]],
    liver_box: Box,
    texture_rng: np.random.Generator,
    blur_sigma_vox: float,
) -> np.ndarray:
    """Tissue map to int16 HU: mean values, textures, lesion contrast, partial-volume blur, noise."""
    grid, codes = scene.grid, scene.codes
    hu = lut[codes]
    in_liver = np.isin(codes[liver_box], _LIVER_CODES)
    texture = _smooth_field(texture_rng, tuple(a[b] for a, b in zip((grid.x, grid.y, grid.z), liver_box)), 7.0)
    hu[liver_box] += np.float32(draws["liver_texture_hu"]) * texture * in_liver
    lung_z = grid.box((-np.inf, -np.inf, float(scene.z_dia.min()) + 4.0), (np.inf, np.inf, np.inf))
    if lung_z is not None:
        lungs = codes[lung_z] == _T.LUNG
        if lungs.any():
            field_ = _smooth_field(texture_rng, (grid.x[lung_z[0]], grid.y[lung_z[1]], grid.z[lung_z[2]]), 5.0)
            hu[lung_z] += np.float32(25.0) * field_ * lungs
    for box, modulation in lesions:
        hu[box] += modulation * np.isin(codes[box], _LIVER_CODES)
    if blur_sigma_vox > 0:
        hu = ndimage.gaussian_filter(hu, sigma=blur_sigma_vox, mode="nearest", truncate=3.0)
    hu += texture_rng.standard_normal(hu.shape, dtype=np.float32) * np.float32(draws["noise_sd"])
    return np.clip(np.rint(hu), HU_MIN, HU_MAX).astype(np.int16)


# ----------------------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------------------


def _check_ids(index: int, seed: int) -> None:
    """Refuse negative or non-integer ids (SeedSequence needs non-negative integers)."""
    for name, value in (("index", index), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"phantom {name} must be a non-negative integer, got {value!r}")


def case_id_for(index: int) -> str:
    """The case (and patient) id of phantom case `index`."""
    return f"phantom_{index:03d}"


def generate_case(
    index: int, seed: int, config: PhantomConfig = PhantomConfig(), return_masks: bool = False
) -> tuple[Volume, Volume, PhantomTruth] | tuple[Volume, Volume, PhantomTruth, dict[str, np.ndarray]]:
    """Generate phantom case `index` of cohort `seed`: the CT, its exact label map and the known answers.

    Args:
        index: position in the cohort; case k is the same whatever the cohort size.
        seed: cohort seed.
        config: grid, lesion, contrast and noise settings.
        return_masks: also return boolean masks of the structures ("body", "liver", "tumor", "vessels",
            "portal_vein_extrahepatic", "spleen", "kidneys", "kidney_left", "kidney_right", "stomach",
            "stomach_gas", "gallbladder", "aorta", "ivc", "spine", "ribs", "lungs", "heart", "muscle", "fat").

    Returns:
        (image, label, truth) or (image, label, truth, masks): image int16 HU in [-1024, 3071], label uint8
        (0 background, 1 liver, 2 tumour) on the same LPS-stored grid.
    """
    _check_ids(index, seed)
    index, seed = int(index), int(seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    # Textures and noise depend on the grid size; their own stream keeps the anatomy draws grid-independent.
    texture_rng = np.random.default_rng(np.random.SeedSequence([seed, index, _BLOCK_TAG + 1]))
    affine, shape = _sample_grid(rng, config)
    grid = _Grid.from_affine(affine, shape)
    body = _sample_body(rng, grid, config)
    scene = _Scene(grid, body)
    _paint_body(scene, texture_rng)
    _paint_spine(scene, rng)
    ivc_xy = _paint_great_vessels(scene, rng)
    _paint_ribs(scene, rng)
    _paint_organs(scene, rng)
    liver = _paint_liver(scene, rng)
    _paint_vessels(scene, _vessel_segments(rng, liver, body, ivc_xy))
    lut, draws = _sample_hu(rng, config)
    burden, plans = _plan_lesions(rng, config, seed, index)
    liver_now = np.isin(scene.codes[liver.box], _LIVER_CODES)
    placed = _place_lesions(rng, grid, liver_now, liver.box, plans, config.lesion_diameter_mm[0])
    modulations: list[tuple[Box, np.ndarray]] = []
    lesions: list[PhantomLesion] = []
    for lesion in placed:
        box, modulation, n_voxels = _paint_lesion(scene, lesion)
        modulations.append((box, modulation))
        lesions.append(
            PhantomLesion(
                center_mm=tuple(round(float(v), 4) for v in lesion.center),  # type: ignore[arg-type]
                diameter_mm=round(lesion.diameter, 3),
                kind=lesion.plan.kind,
                blurred=lesion.plan.blurred,
                contrast_hu=round(lesion.plan.contrast, 3),
                n_voxels=n_voxels,
            )
        )
    image_array = _render(scene, lut, draws, modulations, liver.box, texture_rng, config.blur_sigma_vox)

    label_lut = np.full(_T.COUNT, BACKGROUND, dtype=np.uint8)
    label_lut[list(_LIVER_CODES)] = LIVER
    label_lut[_T.TUMOR] = TUMOR
    label_array = label_lut[scene.codes]
    source = f"phantom:seed={seed}:index={index}"
    image = Volume(image_array, affine.copy(), source, {"phantom_seed": seed, "phantom_index": index})
    label = Volume(label_array, affine.copy(), f"{source}:label", {"phantom_seed": seed, "phantom_index": index})

    voxel_ml = image.voxel_volume_ml
    liver_voxels = int(np.count_nonzero(label_array >= LIVER))
    tumor_voxels = int(np.count_nonzero(label_array == TUMOR))
    centroid_ijk = np.array(ndimage.center_of_mass(label_array >= LIVER))
    centroid = affine[:3, :3] @ centroid_ijk + affine[:3, 3]
    truth = PhantomTruth(
        case_id=case_id_for(index),
        seed=seed,
        index=index,
        shape=tuple(int(s) for s in shape),  # type: ignore[arg-type]
        spacing=tuple(float(s) for s in grid.spacing),  # type: ignore[arg-type]
        liver_voxels=liver_voxels,
        tumor_voxels=tumor_voxels,
        vessel_voxels=int(np.count_nonzero((scene.codes == _T.PORTAL) | (scene.codes == _T.HEPATIC))),
        liver_ml=round(liver_voxels * voxel_ml, 6),
        tumor_ml=round(tumor_voxels * voxel_ml, 6),
        parenchyma_hu=round(draws["parenchyma_hu"], 3),
        noise_sd=round(draws["noise_sd"], 3),
        vessel_contrast_hu=round(draws["vessel_contrast_hu"], 3),
        burden=round(burden, 6),
        liver_centroid_mm=tuple(round(float(v), 3) for v in centroid),  # type: ignore[arg-type]
        diaphragm_dome_z_mm=round(float(body.dome_r), 3),
        lesions=tuple(lesions),
    )
    if not return_masks:
        return image, label, truth
    masks = {"body": scene.codes != _T.AIR}
    for name, codes in _MASK_CODES.items():
        masks[name] = np.isin(scene.codes, codes)
    right = (grid.x > np.float32(body.bx))[:, None, None]
    masks["kidney_right"] = masks["kidneys"] & right
    masks["kidney_left"] = masks["kidneys"] & ~right
    return image, label, truth, masks


def clinical_row(truth: PhantomTruth, rng: np.random.Generator) -> dict[str, object]:
    """A clinical-sheet row for the phantom patient, in HCC-TACE-Seg's columns and codings.

    Rules (simplified clinical staging, with noise): Tr_Size is the largest nominal diameter (cm, +-5 %
    measurement error); tumor_nodul from the lesion count; T_involvment from tumour/liver volume; vascular
    invasion, nodal and distant spread become likelier with tumour volume; TNM (AJCC 7): I solitary, II
    solitary with vascular invasion or multiple <= 5 cm, IIIa multiple > 5 cm, IIIb major vascular invasion,
    IVa nodes, IVb metastases; BCLC: D for Okuda III or Child-Pugh C, C for vascular invasion or spread, 0 for
    one lesion < 2 cm, A for one lesion or up to three <= 3 cm, else B; Okuda points from involvement > 50 %,
    ascites, albumin < 3 g/dL and bilirubin > 3 mg/dL; CLIP = Child-Pugh (0-2) + morphology (0-2) + AFP >= 400
    + portal invasion; AFP log-normal, median rising with tumour volume. About 7 % of every optional item is
    left missing (None); TCIA_ID and Tr_Size are always present.

    Args:
        truth: the case's known answers.
        rng: the row's own random stream (kept apart from the image's).
    """
    count = len(truth.lesions)
    d_max_mm = max((lesion.diameter_mm for lesion in truth.lesions), default=0.0)
    fraction = truth.tumor_ml / truth.liver_ml if truth.liver_ml > 0 else 0.0
    # Tumour load on a 0-1 scale: 0 mL -> 0, about 300 mL -> 1.
    load = float(np.clip(math.log10(1.0 + truth.tumor_ml) / math.log10(301.0), 0.0, 1.0))
    size_cm = round(max(d_max_mm * (1.0 + rng.normal(0.0, 0.05)), 0.0) / 10.0, 1)
    sex = "M" if rng.random() < 0.8 else "F"
    age = int(np.clip(round(rng.normal(64.0, 10.0)), 30, 90))
    vascular = count > 0 and rng.random() < 0.05 + 0.35 * load
    major_vascular = vascular and rng.random() < 0.5
    nodes = count > 0 and rng.random() < 0.02 + 0.10 * load
    metastases = count > 0 and rng.random() < 0.02 + 0.12 * load
    afp = 10.0 ** (0.7 + 1.1 * math.log10(1.0 + truth.tumor_ml) + rng.normal(0.0, 0.45))
    child_draw = rng.random()
    child = 2 if child_draw < 0.02 + 0.06 * load else 1 if child_draw < 0.17 + 0.31 * load else 0
    okuda_points = int(fraction > 0.5)
    okuda_points += int(rng.random() < 0.10 + 0.30 * load)  # ascites
    okuda_points += int(rng.random() < 0.15 + 0.20 * load)  # albumin < 3 g/dL
    okuda_points += int(rng.random() < 0.05 + 0.15 * load)  # bilirubin > 3 mg/dL
    okuda = "I" if okuda_points == 0 else "II" if okuda_points <= 2 else "III"

    if metastases:
        tnm = "IVb"
    elif nodes:
        tnm = "IVa"
    elif major_vascular:
        tnm = "IIIb"
    elif count >= 2 and d_max_mm > 50.0:
        tnm = "IIIa"
    elif count >= 2 or vascular:
        tnm = "II"
    else:
        tnm = "I"
    if okuda == "III" or child == 2:
        bclc = "D"
    elif vascular or nodes or metastases:
        bclc = "C"
    elif count == 1 and d_max_mm < 20.0:
        bclc = "0"
    elif count == 1 or (count <= 3 and d_max_mm <= 30.0):
        bclc = "A"
    else:
        bclc = "B"
    morphology = 2 if fraction > 0.5 else 1 if count >= 2 else 0
    clip = child + morphology + int(afp >= 400.0) + int(vascular)

    row: dict[str, object] = {
        "TCIA_ID": truth.case_id,
        "Sex": sex,
        "Age": age,
        "Tr_Size": size_cm,
        "tumor_nodul": "multinodular" if count >= 2 else "uninodular",
        "T_involvment": ">50%" if fraction > 0.5 else "< or = 50%",
        "TNM": tnm,
        "BCLC": bclc,
        "CLIP_Score": int(clip),
        "Okuda": okuda,
        "AFP": round(afp, 1),
    }
    for column in ("Sex", "Age", "tumor_nodul", "T_involvment", "TNM", "BCLC", "CLIP_Score", "Okuda", "AFP"):
        if rng.random() < _OPTIONAL_MISSING_P:
            row[column] = None
    return row


def generate_cohort(n: int, seed: int, config: PhantomConfig = PhantomConfig()) -> Iterator[Case]:
    """Yield `n` phantom cases lazily, each with its clinical row and its truth in `extra["truth"]`.

    Args:
        n: number of cases (indices 0..n-1).
        seed: cohort seed.
        config: grid, lesion, contrast and noise settings.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"phantom cohort size must be a non-negative integer, got {n!r}")
    _check_ids(0, seed)
    for index in range(int(n)):
        image, label, truth = generate_case(index, seed, config)  # type: ignore[misc]
        row_rng = np.random.default_rng(np.random.SeedSequence([int(seed), index, _CLINICAL_TAG]))
        yield Case(
            case_id=truth.case_id,
            patient_id=truth.case_id,
            image=image,
            label=label,
            clinical=clinical_row(truth, row_rng),
            extra={"truth": asdict(truth)},
        )
