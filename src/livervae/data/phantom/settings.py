"""What a phantom cohort is drawn from and what each case reports: the settings, the truth records, constants.

`PhantomConfig` holds everything that varies between phantom cohorts (grid, lesion statistics, contrast, noise);
`PhantomTruth` and its `PhantomLesion`s are the known answers of one generated case, JSON-serialisable through
`dataclasses.asdict`.

Attributes:
    HU_MIN: the CT floor (HU) the rendered int16 image is clipped to.
    HU_MAX: the CT ceiling (HU) the rendered int16 image is clipped to.
    _BLOCK_TAG: the tag of the burden-stratum stream (`lesions._stratum`); `_BLOCK_TAG + 1` tags the texture and
        noise stream (`generator.generate_case`).
    _CLINICAL_TAG: the tag of the clinical-row stream (`generator.generate_cohort`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

HU_MIN, HU_MAX = -1024, 3071
# Non-zero tags keep the auxiliary streams apart from the case stream (SeedSequence pads entropy with zeros).
_BLOCK_TAG = 0xB10C
_CLINICAL_TAG = 0xC11C


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
