"""Synthetic CT from real label maps: the orchestrator that fixes the order of every random draw.

Case k of cohort `seed` draws everything from `np.random.default_rng(np.random.SeedSequence([seed, k, TAG]))`
in this order: anatomy subject, acquisition (spacing), pose and deformation, field of view, body size (fat),
bowel and stomach content, table, vessels, tumours, appearance, rendering. Whether the case shows no liver and
whether its liver, stomach and kidneys come from the BodyParts3D meshes (and how they are placed and deformed) are
drawn from a second stream, so with both fractions at 0 a case is exactly what it was before those options existed.
Its clinical row uses a third stream, so the row never changes the image; a case is the same whatever the cohort
size.

Sources: TotalSegmentator label maps (`label_maps`, CC BY 4.0) and BodyParts3D organ surfaces (`meshes`, CC BY-SA
2.1 JP), with what they lack modelled here; see `docs/data.md` for the attribution.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from livervae.data.case import Case
from livervae.data.phantom import PhantomLesion, PhantomTruth, clinical_row
from livervae.data.synthetic.deformation import Pose, draw_pose, forward_box, pull_back
from livervae.data.synthetic.label_maps import ANATOMY_SUBJECTS, AnatomySubject, load_subject
from livervae.data.synthetic.meshes import draw_mesh_placement, load_mesh_anatomy, place_mesh_organs
from livervae.data.synthetic.rendering import Appearance, draw_appearance, render
from livervae.data.synthetic.tissues import LIVER_TISSUES, Tissue
from livervae.data.synthetic.tumours import SyntheticLesion, synthesise_tumours
from livervae.data.synthetic.vessels import paint_liver_vessels
from livervae.io.volume import Volume
from livervae.labels import BACKGROUND, LIVER, TUMOR

# Stream tags keep this generator's draws apart from the parametric phantom's for the same (seed, index).
_TAG = 0x5E17
_CLINICAL_TAG = 0x5E18
_ANATOMY_TAG = 0x5E19


@dataclass(frozen=True)
class SyntheticConfig:
    """What varies between synthetic cohorts.

    Attributes:
        subjects: TotalSegmentator subjects to draw the anatomy from.
        inplane_spacing_mm: range of the simulated acquisition's pixel size.
        slice_thickness_mm: range of the simulated slice thickness.
        min_spacing_mm: the grid is never finer than this (the label maps are 1.5 mm; finer grids only cost time):
            the acquisition is simulated by blur and noise, then written at max(acquisition, this).
        liver_ml: range of the drawn liver volume.
        cut_liver_fraction: probability that the field of view cuts the liver (dome or tip out of view).
        tumor_free_fraction: probability of a case without lesions.
        lesion_count: inclusive range of the lesion count of a case with lesions.
        lesion_diameter_mm: smallest and largest nominal lesion diameter.
        largest_lesion_mm: range of a case's largest lesion (log-uniform); the others are 20-80 % of it, at
            least the smallest diameter.
        blurred_fraction: probability of a blurred lesion margin.
        noise_sd_hu: range of the noise level.
        vessels: paint intrahepatic vessel trees.
        randomise_intensity: domain-randomised contrast, noise, bias and streaks (False: the ablation's fixed
            portal-venous appearance).
        tumour_model: "hu2023" (textured, rim, necrosis, capsule, blurred margins, mass effect) or "simple" (the
            ablation's flat, sharp ellipsoids).
        mesh_organ_fraction: probability that a case's liver, stomach and kidneys are the BodyParts3D organs,
            placed and deformed at random (`livervae.data.synthetic.meshes`), instead of the subject's own.
        no_liver_fraction: probability of a negative case: a field of view of the chest or the pelvis with no
            liver in it (empty liver label), so a model learns to find none.
        data_dir: shared data folder (default: `livervae.paths.shared_data_dir()`).
    """

    subjects: tuple[str, ...] = ANATOMY_SUBJECTS
    inplane_spacing_mm: tuple[float, float] = (0.5, 1.0)
    slice_thickness_mm: tuple[float, float] = (0.6, 5.0)
    min_spacing_mm: tuple[float, float, float] = (1.5, 1.5, 1.5)
    liver_ml: tuple[float, float] = (1200.0, 2200.0)
    cut_liver_fraction: float = 0.15
    tumor_free_fraction: float = 0.15
    lesion_count: tuple[int, int] = (1, 8)
    lesion_diameter_mm: tuple[float, float] = (2.0, 120.0)
    largest_lesion_mm: tuple[float, float] = (10.0, 120.0)
    blurred_fraction: float = 0.5
    noise_sd_hu: tuple[float, float] = (5.0, 35.0)
    vessels: bool = True
    randomise_intensity: bool = True
    tumour_model: str = "hu2023"
    mesh_organ_fraction: float = 0.0
    no_liver_fraction: float = 0.0
    data_dir: Path | None = None

    def __post_init__(self) -> None:
        pairs = {
            "inplane_spacing_mm": self.inplane_spacing_mm,
            "slice_thickness_mm": self.slice_thickness_mm,
            "liver_ml": self.liver_ml,
            "lesion_count": self.lesion_count,
            "lesion_diameter_mm": self.lesion_diameter_mm,
            "largest_lesion_mm": self.largest_lesion_mm,
            "noise_sd_hu": self.noise_sd_hu,
        }
        for name, pair in pairs.items():
            if len(pair) != 2 or not 0 <= pair[0] <= pair[1]:
                raise ValueError(f"SyntheticConfig.{name} must be an ordered non-negative pair, got {pair!r}")
        if self.tumour_model not in ("hu2023", "simple"):
            raise ValueError(f"SyntheticConfig.tumour_model must be 'hu2023' or 'simple', got {self.tumour_model!r}")
        if not self.subjects:
            raise ValueError("SyntheticConfig.subjects must name at least one subject")
        for name in (
            "cut_liver_fraction",
            "tumor_free_fraction",
            "blurred_fraction",
            "mesh_organ_fraction",
            "no_liver_fraction",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"SyntheticConfig.{name} must lie in [0, 1], got {getattr(self, name)!r}")

    @classmethod
    def training_pool(cls) -> "SyntheticConfig":
        """Coarser grids (2 mm, 2.5 mm slices) for pools on the CPU (the models see 3-4 mm anyway), label-map
        anatomy only: the unseen synthetic test sets, and the pool the 0.5.0 tumour weights were trained on."""
        return cls(min_spacing_mm=(2.0, 2.0, 2.5))

    @classmethod
    def training_mix(cls) -> "SyntheticConfig":
        """`training_pool` with half the livers (and their stomach and kidneys) from the BodyParts3D meshes and 8 %
        negative (no-liver) cases: the liver model's training data."""
        return cls(min_spacing_mm=(2.0, 2.0, 2.5), mesh_organ_fraction=0.5, no_liver_fraction=0.08)


# Named configurations (the `livervae phantom --preset` names of this generator).
SYNTHETIC_PRESETS: dict[str, Callable[[], SyntheticConfig]] = {
    "synthetic": SyntheticConfig,
    "synthetic-pool": SyntheticConfig.training_pool,
    "synthetic-train": SyntheticConfig.training_mix,
}


@dataclass(frozen=True)
class SyntheticTruth:
    """What one synthetic case is, as generated (JSON-serialisable through `dataclasses.asdict`)."""

    case_id: str
    seed: int
    index: int
    subject: str
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    acquisition_mm: tuple[float, float, float]
    phase: str
    liver_state: str
    liver_ml: float
    tumor_ml: float
    liver_cut: bool
    noise_sd: float
    anatomy: str
    no_liver: bool
    vessel_voxels: int
    lesions: tuple[SyntheticLesion, ...] = field(default_factory=tuple)


def case_id_for(index: int) -> str:
    """The case (and patient) id of synthetic case `index`."""
    return f"synthetic_{index:04d}"


def _negative_range(subject: AnatomySubject, rng: np.random.Generator) -> tuple[float, float]:
    """z range (world mm) of a no-liver field of view: 120-250 mm of chest above the dome or of abdomen and pelvis
    below the tip, whichever this subject has room for (both: drawn)."""
    body_lo, body_hi = subject.body_extent
    liver_lo, liver_hi = subject.liver_extent
    clearance = 25.0  # the pose's deformation moves anatomy by a few mm: stay clear of the liver
    options = []
    if subject.liver_in_view and body_hi[2] - (liver_hi[2] + clearance) >= 121.0:
        options.append((liver_hi[2] + clearance, body_hi[2] - 1.0))
    if liver_lo[2] - clearance - body_lo[2] >= 121.0:
        options.append((body_lo[2] + 1.0, liver_lo[2] - clearance))
    if not options:
        raise ValueError(f"subject {subject.name} has no 120 mm of body clear of the liver for a negative case")
    low, high = options[int(rng.integers(len(options)))]
    height = rng.uniform(120.0, min(250.0, high - low))
    bottom = rng.uniform(low, high - height)
    return bottom, bottom + height


def _field_of_view(
    rng: np.random.Generator, subject: AnatomySubject, cut_fraction: float, negative: bool = False
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Source-space box (world mm): the body in-plane with a margin; from above the liver dome down to somewhere
    between the liver's tip and the pelvis; on some cases the dome or the tip out of view; on a negative case
    chest or pelvis without the liver."""
    body_lo, body_hi = subject.body_extent
    if negative:
        bottom, top = _negative_range(subject, rng)
        margin = rng.uniform(30.0, 90.0)
        lo = np.array([body_lo[0] - margin, body_lo[1] - margin, bottom])
        hi = np.array([body_hi[0] + margin, body_hi[1] + margin, top])
        return lo, hi, True
    liver_lo, liver_hi = subject.liver_extent
    height = liver_hi[2] - liver_lo[2]
    top = liver_hi[2] + rng.uniform(10.0, 90.0)
    bottom = liver_lo[2] - rng.uniform(0.0, 160.0)
    cut = rng.random() < cut_fraction and subject.liver_in_view
    if cut:
        if rng.random() < 0.5:
            top = liver_hi[2] - rng.uniform(0.1, 0.35) * height
        else:
            bottom = liver_lo[2] + rng.uniform(0.1, 0.35) * height
    top, bottom = min(top, body_hi[2] - 1.0), max(bottom, body_lo[2] + 1.0)
    # At least 120 mm of body in view (a liver-dome-only scan still shows the upper abdomen).
    bottom = max(min(bottom, top - 120.0), body_lo[2] + 1.0)
    margin = rng.uniform(30.0, 90.0)
    lo = np.array([body_lo[0] - margin, body_lo[1] - margin, bottom])
    hi = np.array([body_hi[0] + margin, body_hi[1] + margin, top])
    return lo, hi, bool(cut or not subject.liver_in_view)


def _out_grid(lo: np.ndarray, hi: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int]]:
    """An LPS-stored grid (DICOM-like) covering the world box, square in-plane."""
    size = hi - lo
    side = max(size[0], size[1])
    centre = (lo + hi) / 2.0
    shape = (
        int(np.ceil(side / spacing[0])),
        int(np.ceil(side / spacing[1])),
        max(int(np.ceil(size[2] / spacing[2])), 8),
    )
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    # Voxel (0, 0, 0) sits at the patient's right-anterior-inferior corner (largest x and y, smallest z).
    affine[:3, 3] = centre + np.array([(shape[0] - 1) / 2.0 * spacing[0], (shape[1] - 1) / 2.0 * spacing[1], 0.0])
    affine[2, 3] = lo[2]
    return affine, shape  # type: ignore[return-value]


def _body_and_fat(rng: np.random.Generator, tissues: np.ndarray, outside_mm: np.ndarray, spacing: np.ndarray) -> None:
    """Subcutaneous fat of a drawn thickness (patient size) and skin around the body wall; air beyond."""
    thickness = rng.uniform(6.0, 45.0) * (1.0 + 0.3 * _unit_field(rng, tissues.shape, 60.0 / spacing))
    skin = rng.uniform(1.5, 3.0)
    air = tissues == Tissue.AIR
    tissues[air & (outside_mm <= thickness - skin)] = Tissue.FAT
    tissues[air & (outside_mm > thickness - skin) & (outside_mm <= thickness)] = Tissue.SKIN


def _unit_field(rng: np.random.Generator, shape: tuple[int, ...], sigma_vox: np.ndarray) -> np.ndarray:
    coarse = tuple(max(2, int(np.ceil(n / 4))) for n in shape)
    f = ndimage.gaussian_filter(rng.standard_normal(coarse).astype(np.float32), sigma=np.maximum(sigma_vox / 4, 0.5))
    f = ndimage.zoom(f, [n / c for n, c in zip(shape, coarse)], order=1, grid_mode=True, mode="nearest")
    f = f[: shape[0], : shape[1], : shape[2]]
    return np.clip(f / max(float(np.abs(f).max()), 1e-6), -1.0, 1.0)


def _bowel_content(rng: np.random.Generator, tissues: np.ndarray, affine: np.ndarray) -> None:
    """Gas pockets and (on some cases) oral contrast in the bowel; a gas cap in the stomach's anterior part."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    bowel = tissues == Tissue.BOWEL
    if bowel.any():
        field_ = _unit_field(rng, tissues.shape, 10.0 / spacing)
        tissues[bowel & (field_ > rng.uniform(0.2, 0.6))] = Tissue.GAS
        if rng.random() < 0.35:
            other = _unit_field(rng, tissues.shape, 25.0 / spacing)
            tissues[(tissues == Tissue.BOWEL) & (other > rng.uniform(-0.3, 0.3))] = Tissue.ORAL_CONTRAST
    stomach = np.argwhere(tissues == Tissue.STOMACH)
    if len(stomach):
        # Supine patient: gas rises anteriorly (+y in RAS). World y of every stomach voxel.
        y = stomach @ affine[1, :3] + affine[1, 3]
        level = np.quantile(y, rng.uniform(0.6, 0.97))
        gas = stomach[y > level]
        tissues[tuple(gas.T)] = Tissue.GAS


def _table(rng: np.random.Generator, tissues: np.ndarray, affine: np.ndarray) -> None:
    """A patient table under the body (posterior), on most cases."""
    if rng.random() < 0.2:
        return
    body = np.argwhere(tissues != Tissue.AIR)
    if len(body) == 0:
        return
    y_world = affine[1, 1] * np.arange(tissues.shape[1]) + affine[1, 3]
    posterior = float((body @ affine[1, :3] + affine[1, 3]).min())
    gap, thickness = rng.uniform(0.0, 15.0), rng.uniform(15.0, 45.0)
    rows = (y_world < posterior - gap) & (y_world >= posterior - gap - thickness)
    x_world = affine[0, 0] * np.arange(tissues.shape[0]) + affine[0, 3]
    centre_x = float((body @ affine[0, :3] + affine[0, 3]).mean())
    cols = np.abs(x_world - centre_x) <= rng.uniform(180.0, 260.0)
    slab = cols[:, None] & rows[None, :]
    region = tissues[slab]
    region[region == Tissue.AIR] = Tissue.TABLE
    tissues[slab] = region


def _anatomy_rng(index: int, seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index), _ANATOMY_TAG]))


def _draw_negative(anatomy_rng: np.random.Generator, config: SyntheticConfig) -> bool:
    """The anatomy stream's first draw: whether the case shows no liver."""
    return bool(anatomy_rng.random() < config.no_liver_fraction)


def is_negative_case(index: int, seed: int, config: SyntheticConfig = SyntheticConfig()) -> bool:
    """Whether case `index` of cohort `seed` is a no-liver case, known without generating it."""
    return _draw_negative(_anatomy_rng(index, seed), config)


def generate_synthetic_case(
    index: int, seed: int, config: SyntheticConfig = SyntheticConfig()
) -> tuple[Volume, Volume, SyntheticTruth, np.ndarray]:
    """Generate synthetic case `index` of cohort `seed` from a real label map.

    Returns:
        (image, label, truth, tissues): int16 HU, uint8 label (0 background, 1 liver incl. intrahepatic vessels,
        2 tumour) on the same LPS-stored grid, what was drawn, and the tissue map (codes of `Tissue`).
    """
    for name, value in (("index", index), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"synthetic case {name} must be a non-negative integer, got {value!r}")
    index, seed = int(index), int(seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, _TAG]))
    anatomy_rng = _anatomy_rng(index, seed)
    subject = load_subject(config.subjects[int(rng.integers(len(config.subjects)))], config.data_dir)
    negative = _draw_negative(anatomy_rng, config)
    use_meshes = bool(anatomy_rng.random() < config.mesh_organ_fraction) and not negative
    in_plane = float(rng.uniform(*config.inplane_spacing_mm))
    acquisition = (in_plane, in_plane, float(rng.uniform(*config.slice_thickness_mm)))
    spacing = np.maximum(np.asarray(acquisition), np.asarray(config.min_spacing_mm))
    pose: Pose = draw_pose(rng, subject, config.liver_ml)
    src_lo, src_hi, liver_cut = _field_of_view(rng, subject, config.cut_liver_fraction, negative)
    centre_src = (src_lo + src_hi) / 2.0
    out_lo, out_hi = forward_box(pose, src_lo, src_hi, centre_src, centre_src)
    # Keep the drawn z range (the rotation's tilt would add slices outside the intended field of view).
    scale_z = float(pose.scale[2])
    out_lo[2], out_hi[2] = (
        centre_src[2] - (centre_src[2] - src_lo[2]) * scale_z,
        centre_src[2] + (src_hi[2] - centre_src[2]) * scale_z,
    )
    affine, shape = _out_grid(out_lo, out_hi, spacing)
    coords = pull_back(subject, pose, affine, shape, centre_src, centre_src, rng)
    tissues = ndimage.map_coordinates(subject.tissues, coords, order=0, mode="constant", cval=int(Tissue.AIR))
    # Beyond the subject's grid nothing is known: air there (its body may end flat at the grid's edge).
    outside = ndimage.map_coordinates(subject.outside_mm.astype(np.float32), coords, order=1, cval=1e4)
    if use_meshes:
        mesh = load_mesh_anatomy(config.data_dir)
        world = np.einsum("ab,b...->a...", subject.affine[:3, :3].astype(np.float32), coords)
        world += subject.affine[:3, 3].astype(np.float32)[:, None, None, None]
        del coords
        place_mesh_organs(anatomy_rng, tissues, world, spacing, mesh, draw_mesh_placement(anatomy_rng, subject, mesh))
        del world
    else:
        del coords
    _body_and_fat(rng, tissues, outside, spacing)
    del outside
    _bowel_content(rng, tissues, affine)
    _table(rng, tissues, affine)
    vessel_voxels = paint_liver_vessels(rng, tissues, affine) if config.vessels else 0
    count = (
        0
        if rng.random() < config.tumor_free_fraction or negative
        else int(rng.integers(config.lesion_count[0], config.lesion_count[1] + 1))
    )
    lesions, paints = synthesise_tumours(
        rng,
        tissues,
        affine,
        count,
        config.lesion_diameter_mm,
        config.largest_lesion_mm,
        config.blurred_fraction,
        config.tumour_model,
    )
    appearance: Appearance = draw_appearance(rng, acquisition, config.noise_sd_hu, config.randomise_intensity)
    image_array = render(rng, tissues, affine, appearance, paints)

    label_array = np.full(tissues.shape, BACKGROUND, dtype=np.uint8)
    label_array[np.isin(tissues, LIVER_TISSUES)] = LIVER
    label_array[tissues == Tissue.TUMOR] = TUMOR
    source = f"synthetic:seed={seed}:index={index}"
    meta = {"synthetic_seed": seed, "synthetic_index": index}
    image = Volume(image_array, affine.copy(), source, dict(meta))
    label = Volume(label_array, affine.copy(), f"{source}:label", dict(meta))
    voxel_ml = image.voxel_volume_ml
    truth = SyntheticTruth(
        case_id=case_id_for(index),
        seed=seed,
        index=index,
        subject=subject.name,
        shape=tuple(int(s) for s in shape),  # type: ignore[arg-type]
        spacing=tuple(round(float(s), 4) for s in spacing),  # type: ignore[arg-type]
        acquisition_mm=tuple(round(v, 3) for v in acquisition),  # type: ignore[arg-type]
        phase=appearance.phase,
        liver_state=appearance.liver_state,
        liver_ml=round(float(np.count_nonzero(label_array >= LIVER)) * voxel_ml, 3),
        tumor_ml=round(float(np.count_nonzero(label_array == TUMOR)) * voxel_ml, 3),
        liver_cut=liver_cut,
        anatomy=f"{subject.name}+bodyparts3d" if use_meshes else subject.name,
        no_liver=negative,
        noise_sd=round(appearance.noise_sd, 3),
        vessel_voxels=vessel_voxels,
        lesions=tuple(lesions),
    )
    return image, label, truth, tissues


def _clinical(truth: SyntheticTruth, rng: np.random.Generator) -> dict[str, object]:
    """The clinical-sheet row, by the parametric phantom's rules (severity follows tumour burden)."""
    as_phantom = PhantomTruth(
        case_id=truth.case_id,
        seed=truth.seed,
        index=truth.index,
        shape=truth.shape,
        spacing=truth.spacing,
        liver_voxels=0,
        tumor_voxels=0,
        vessel_voxels=truth.vessel_voxels,
        liver_ml=truth.liver_ml,
        tumor_ml=truth.tumor_ml,
        parenchyma_hu=0.0,
        noise_sd=truth.noise_sd,
        vessel_contrast_hu=0.0,
        burden=0.0,
        liver_centroid_mm=(0.0, 0.0, 0.0),
        diaphragm_dome_z_mm=0.0,
        lesions=tuple(
            PhantomLesion(
                lesion.center_mm, lesion.diameter_mm, lesion.kind, lesion.blurred, lesion.contrast_hu, lesion.n_voxels
            )
            for lesion in truth.lesions
        ),
    )
    return clinical_row(as_phantom, rng)


def generate_synthetic_cohort(n: int, seed: int, config: SyntheticConfig = SyntheticConfig()) -> Iterator[Case]:
    """Yield `n` synthetic cases lazily, each with its clinical row and its truth in `extra["truth"]`."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"synthetic cohort size must be a non-negative integer, got {n!r}")
    for index in range(int(n)):
        yield generate_synthetic_case_record(index, seed, config)


def generate_synthetic_case_record(index: int, seed: int, config: SyntheticConfig = SyntheticConfig()) -> Case:
    """Case `index` of cohort `seed` as a dataset case: image, label, clinical row, truth in `extra["truth"]`."""
    image, label, truth, _ = generate_synthetic_case(index, seed, config)
    row_rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), _CLINICAL_TAG]))
    return Case(
        case_id=truth.case_id,
        patient_id=truth.case_id,
        image=image,
        label=label,
        clinical=_clinical(truth, row_rng),
        extra={"truth": asdict(truth)},
        negative=truth.no_liver,
    )
