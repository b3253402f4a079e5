"""`ircadb`: 3D-IRCADb-01 patient folders → CT with a 0/1/2 label map built at load time.

Each patient folder holds `PATIENT_DICOM` (the CT series) and `MASKS_DICOM/<structure>/` (one binary mask series
per structure, stored as 8-bit CT images with values 0/255), either unpacked or as .zip/.tar.gz archives as in
the original release. `liver` becomes 1 and every `livertumor*` structure becomes 2. The derived label map is
never stored next to the source: the licence (CC BY-NC-ND) forbids distributing derivatives.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import apply_rescale

from livervae.data.case import Case, safe_case_id
from livervae.data.formats import SourceOptions
from livervae.data.formats._common import require_source
from livervae.errors import InputError
from livervae.io.archive import as_folder, find_folder_or_archive, iter_files
from livervae.io.dicom_series import DicomSeries, read_dicom_series, slice_index_for_position
from livervae.io.volume import Volume
from livervae.labels import LIVER, TUMOR

logger = logging.getLogger(__name__)

PATIENT_STEM = "PATIENT_DICOM"
MASKS_STEM = "MASKS_DICOM"
LIVER_STRUCTURE = re.compile(r"liver", re.IGNORECASE)
TUMOR_STRUCTURE = re.compile(r"livertumou?rs?[_ -]*\d*", re.IGNORECASE)


def find_patient_folders(source: Path) -> list[Path]:
    """Return `source` if it is a patient folder, else its sub-folders that are patient folders."""
    if find_folder_or_archive(source, PATIENT_STEM) is not None:
        return [source]
    folders = [p for p in sorted(source.iterdir()) if p.is_dir() and find_folder_or_archive(p, PATIENT_STEM)]
    if not folders:
        raise InputError(source, f"no 3D-IRCADb patient folder ({PATIENT_STEM} with {MASKS_STEM}) found")
    return folders


def _structure_role(name: str) -> int | None:
    if LIVER_STRUCTURE.fullmatch(name):
        return LIVER
    if TUMOR_STRUCTURE.fullmatch(name):
        return TUMOR
    return None


def read_masks(masks: Path, ct: DicomSeries) -> np.ndarray:
    """Merge the liver and liver-tumour mask series of `masks` into a 0/1/2 array on the CT grid."""
    nx, ny, nz = ct.volume.shape
    structures: dict[str, np.ndarray] = {}
    for relative, handle in iter_files(masks):
        if len(relative.parts) < 2:
            continue
        structure = relative.parts[-2]
        role = _structure_role(structure)
        if role is None:
            continue
        try:
            dataset = pydicom.dcmread(io.BytesIO(handle.read()))
            # The release stores masks as 8-bit with intercept 0; re-exports may rescale, so apply it.
            pixels = apply_rescale(dataset.pixel_array, dataset)
            position = np.asarray(dataset.ImagePositionPatient, dtype=float)
        except Exception as exc:
            raise InputError(f"{masks}/{relative}", f"cannot read mask slice ({type(exc).__name__}: {exc})") from exc
        if pixels.shape != (ny, nx):
            raise InputError(f"{masks}/{relative}", f"mask slice is {pixels.shape}, the CT slices are {(ny, nx)}")
        k = slice_index_for_position(ct, position, f"{masks}/{relative}")
        mask = structures.setdefault(structure, np.zeros((nx, ny, nz), dtype=bool))
        mask[:, :, k] |= pixels.T > 0
    if not any(_structure_role(name) == LIVER for name in structures):
        raise InputError(masks, "no 'liver' mask series found")
    label = np.zeros((nx, ny, nz), dtype=np.uint8)
    for name, mask in structures.items():
        if _structure_role(name) == LIVER:
            label[mask] = LIVER
    for name, mask in structures.items():
        if _structure_role(name) == TUMOR:
            label[mask] = TUMOR
    logger.debug("%s: merged structures %s", masks, sorted(structures))
    return label


def read_patient(folder: Path) -> Case:
    """Read one 3D-IRCADb patient folder into a labelled case."""
    patient = find_folder_or_archive(folder, PATIENT_STEM)
    masks = find_folder_or_archive(folder, MASKS_STEM)
    if patient is None or masks is None:
        raise InputError(folder, f"a 3D-IRCADb patient folder needs {PATIENT_STEM} and {MASKS_STEM}")
    with as_folder(patient) as patient_folder:
        ct = read_dicom_series(patient_folder)
    ct.volume.source = str(patient)
    label = Volume(array=read_masks(masks, ct), affine=ct.volume.affine.copy(), source=str(masks))
    case_id = safe_case_id(folder.name)
    return Case(case_id=case_id, patient_id=case_id, image=ct.volume, label=label, extra={"series_uid": ct.series_uid})


def iter_cases(source: Path | None, options: SourceOptions) -> Iterator[Case]:
    """Yield one labelled case per 3D-IRCADb patient folder found at `source`."""
    source = require_source(source, "ircadb")
    for folder in find_patient_folders(source):
        yield read_patient(folder)
