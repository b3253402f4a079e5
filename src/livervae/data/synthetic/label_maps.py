"""Real whole-abdomen label maps as the generator's anatomy: TotalSegmentator subjects read as tissue maps.

A TotalSegmentator subject folder (`<subject>/segmentations/<structure>.nii.gz`, one binary mask per structure)
becomes one uint8 tissue map (`livervae.data.synthetic.tissues.Tissue`). The label maps hold organs, vessels,
bones and some muscles but no body outline, fat, skin or abdominal wall; this module models those from the
labelled structures: per axial slice the convex hull of everything labelled is the inside of the body wall,
the wall itself a muscle layer inside that hull, and the distance outside the hull (kept per subject) lets each
case draw its own subcutaneous fat thickness (patient size). Unlabelled voxels inside the hull are visceral fat.

The subjects are real anatomy of the TotalSegmentator dataset (Wasserthal et al., Radiology: AI 2023,
doi:10.5281/zenodo.6802613, CC BY 4.0).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage
from skimage.morphology import convex_hull_image

from livervae.data.synthetic.tissues import STRUCTURE_TISSUES, Tissue
from livervae.errors import InputError
from livervae.paths import shared_data_dir

# Subjects with a liver in view, the generator's anatomy sources.
ANATOMY_SUBJECTS = ("s0004", "s0006")
# Real CTs of the same dataset with no liver in view: a liver model must find nothing there.
NO_LIVER_SUBJECTS = ("s0002", "s0003")
SUBJECTS_FOLDER = "totalsegmentator_subjects"
# Overlaps between masks are resolved by this priority (later wins): small or enclosed structures last.
_PRIORITY = (
    Tissue.MUSCLE,
    Tissue.LUNG,
    Tissue.BOWEL,
    Tissue.STOMACH,
    Tissue.SOFT_TISSUE,
    Tissue.BLADDER,
    Tissue.HEART,
    Tissue.SPLEEN,
    Tissue.PANCREAS,
    Tissue.KIDNEY,
    Tissue.CYST,
    Tissue.LIVER,
    Tissue.GALLBLADDER,
    Tissue.CARTILAGE,
    Tissue.BONE,
    Tissue.SPINAL_CORD,
    Tissue.BRAIN,
    Tissue.AIRWAY,
    Tissue.PORTAL_VEIN,
    Tissue.VEIN,
    Tissue.ARTERY,
)


@dataclass(frozen=True)
class AnatomySubject:
    """One real subject as the generator uses it.

    Attributes:
        name: the subject folder name.
        tissues: uint8 tissue map (inside the body wall; outside it is AIR until a case draws its fat).
        outside_mm: per voxel, in-plane distance (mm) outside the body-wall hull (0 inside), float16.
        affine: voxel-to-RAS affine of both arrays.
        liver_ml: the subject's liver volume in view.
        liver_in_view: whether the whole liver is in view (no liver on the first or last slice).
    """

    name: str
    tissues: np.ndarray
    outside_mm: np.ndarray
    affine: np.ndarray
    liver_ml: float
    liver_in_view: bool

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size (mm) along each array axis."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    # The subject is loaded once per process and every case reads these: computed on first use, then kept.
    @functools.cached_property
    def liver_world(self) -> np.ndarray:
        """World (RAS mm) coordinates of the liver's voxel centres, (n, 3), read-only."""
        world = world_points(self.affine, self.tissues == Tissue.LIVER)
        world.setflags(write=False)
        return world

    @functools.cached_property
    def liver_extent(self) -> tuple[np.ndarray, np.ndarray]:
        """World (RAS mm) lower and upper corners of the liver's voxel centres."""
        return self.liver_world.min(axis=0), self.liver_world.max(axis=0)

    @functools.cached_property
    def body_extent(self) -> tuple[np.ndarray, np.ndarray]:
        """World (RAS mm) lower and upper corners of the body's voxel centres (all but AIR)."""
        body = world_points(self.affine, self.tissues != Tissue.AIR)
        return body.min(axis=0), body.max(axis=0)


def subjects_dir(data_dir: Path | None = None) -> Path:
    """The TotalSegmentator subjects folder under the shared data folder."""
    return (data_dir or shared_data_dir()) / SUBJECTS_FOLDER


def _tissue_of(structure: str) -> Tissue | None:
    if structure in STRUCTURE_TISSUES:
        return STRUCTURE_TISSUES[structure]
    for key, tissue in STRUCTURE_TISSUES.items():
        if key.endswith("_") and structure.startswith(key):
            return tissue
    return None


def _read_masks(folder: Path) -> tuple[dict[Tissue, np.ndarray], np.ndarray]:
    """Every structure mask of a subject folder grouped by tissue, on the subject's grid."""
    masks_dir = folder / "segmentations"
    files = sorted(masks_dir.glob("*.nii.gz"))
    if not files:
        raise InputError(masks_dir, "no TotalSegmentator masks (<structure>.nii.gz) found")
    grouped: dict[Tissue, np.ndarray] = {}
    affine = None
    shape = None
    for path in files:
        tissue = _tissue_of(path.name[: -len(".nii.gz")])
        if tissue is None:
            continue
        try:
            image = nib.load(path)
            data = np.asarray(image.dataobj) > 0
        except Exception as exc:  # nibabel raises several types for damaged files
            raise InputError(path, f"unreadable mask: {exc}") from None
        if affine is None:
            affine, shape = image.affine.copy(), data.shape
        elif data.shape != shape or not np.allclose(image.affine, affine, atol=1e-3):
            raise InputError(path, f"mask grid {data.shape} differs from the subject's {shape}")
        grouped[tissue] = grouped.get(tissue, np.zeros(shape, dtype=bool)) | data
    if affine is None:
        raise InputError(masks_dir, "no known TotalSegmentator structure among the masks")
    return grouped, affine


def _body_wall(labelled: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per axial slice, the convex hull of the labelled structures and the in-plane distance outside it (mm)."""
    hull = np.zeros_like(labelled)
    for k in range(labelled.shape[2]):
        if labelled[:, :, k].any():
            hull[:, :, k] = convex_hull_image(labelled[:, :, k])
    outside = np.empty(labelled.shape, dtype=np.float16)
    for k in range(labelled.shape[2]):
        if hull[:, :, k].any():
            outside[:, :, k] = ndimage.distance_transform_edt(~hull[:, :, k], sampling=spacing[:2])
        else:
            outside[:, :, k] = np.inf
    return hull, outside


def load_subject(name: str, data_dir: Path | None = None) -> AnatomySubject:
    """Read one TotalSegmentator subject as a tissue map with a modelled body wall (cached per process).

    Args:
        name: subject folder name, e.g. "s0004".
        data_dir: shared data folder (default `livervae.paths.shared_data_dir()`).

    Raises:
        InputError: the folder or its masks are missing or unreadable.
    """
    return _load_subject(subjects_dir(data_dir).resolve() / name)


@functools.lru_cache(maxsize=4)
def _load_subject(folder: Path) -> AnatomySubject:
    name = folder.name
    if not folder.is_dir():
        raise InputError(folder, "TotalSegmentator subject folder not found (set LIVERVAE_DATA_DIR)")
    grouped, affine = _read_masks(folder)
    shape = next(iter(grouped.values())).shape
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    tissues = np.full(shape, Tissue.FAT, dtype=np.uint8)
    labelled = np.zeros(shape, dtype=bool)
    for tissue in _PRIORITY:
        if tissue in grouped:
            tissues[grouped[tissue]] = tissue
            labelled |= grouped[tissue]
    hull, outside = _body_wall(labelled, spacing)
    # The abdominal and thoracic wall: a muscle layer along the inside of the hull where nothing is labelled.
    inside_mm = np.empty(shape, dtype=np.float32)
    for k in range(shape[2]):
        inside_mm[:, :, k] = ndimage.distance_transform_edt(hull[:, :, k], sampling=spacing[:2])
    wall = hull & ~labelled & (inside_mm <= 12.0)
    tissues[wall] = Tissue.MUSCLE
    tissues[~hull] = Tissue.AIR
    liver = tissues == Tissue.LIVER
    liver_ml = float(np.count_nonzero(liver) * np.prod(spacing) / 1000.0)
    liver_in_view = not (liver[:, :, 0].any() or liver[:, :, -1].any())
    tissues.setflags(write=False)
    outside.setflags(write=False)
    return AnatomySubject(name, tissues, outside, affine, liver_ml, liver_in_view)


def world_points(affine: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """World (RAS mm) coordinates, (n, 3), of the voxel centres in `mask` under the voxel-to-RAS `affine`."""
    return np.argwhere(mask) @ affine[:3, :3].T + affine[:3, 3]


def no_liver_ct_paths(data_dir: Path | None = None) -> list[Path]:
    """The real CTs with no liver in view (`<subject>/ct.nii.gz`), for checking that a liver model finds none."""
    return [subjects_dir(data_dir) / name / "ct.nii.gz" for name in NO_LIVER_SUBJECTS]
