"""Write a `Volume` as a single-frame DICOM CT series (phantoms as DICOM, fixtures in real PACS layouts).

Slices are stored as unsigned 16-bit values with RescaleIntercept -1024, as most scanners do, so readers
must apply the rescale to get Hounsfield units back.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from livervae import __version__
from livervae.errors import InputError
from livervae.io.atomic import atomic_path
from livervae.io.volume import Volume

RESCALE_INTERCEPT = -1024


@dataclass
class SeriesIdentity:
    """The identifiers and descriptive attributes written into every slice of the series.

    UIDs default to fresh ones derived from `uid_seed`, so the same seed gives the same UIDs.
    """

    uid_seed: str = "livervae"
    study_uid: str | None = None
    series_uid: str | None = None
    frame_of_reference_uid: str | None = None
    series_number: int = 1
    series_description: str = "LiverVAE export"
    modality: str = "CT"
    patient_name: str = "Anonymous^Phantom"
    patient_id: str = "LIVERVAE"
    patient_birth_date: str = ""
    study_date: str = field(default_factory=lambda: dt.date.today().strftime("%Y%m%d"))

    def uid(self, name: str) -> str:
        """A deterministic UID for `name` (study, series, frame of reference or a slice) of this series."""
        return generate_uid(entropy_srcs=[self.uid_seed, name])


def _lps_geometry(volume: Volume) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Row direction, column direction, origin (LPS) and spacing from the RAS affine."""
    ras_to_lps = np.diag([-1.0, -1.0, 1.0])
    spacing = volume.spacing
    axes = ras_to_lps @ volume.affine[:3, :3] / np.asarray(spacing)
    origin = ras_to_lps @ volume.affine[:3, 3]
    return axes[:, 0], axes[:, 1], origin, spacing


def write_ct_series(
    volume: Volume, folder: str | os.PathLike[str], identity: SeriesIdentity | None = None
) -> list[Path]:
    """Write `volume` (HU) as one DICOM file per slice `<folder>/IM-<k>.dcm`, each written atomically.

    Returns:
        The written file paths in slice order.

    Raises:
        InputError: values outside what 16-bit storage with intercept -1024 can hold.
    """
    identity = identity or SeriesIdentity()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    values = np.rint(np.asarray(volume.array, dtype=np.float64)) - RESCALE_INTERCEPT
    if values.min() < 0 or values.max() > 65535:
        raise InputError(volume.source, "values outside -1024..64511 HU cannot be stored as 16-bit CT")
    stored = values.astype(np.uint16)
    row_dir, col_dir, origin, spacing = _lps_geometry(volume)
    normal_step = np.cross(row_dir, col_dir) * spacing[2]
    slice_step = np.diag([-1.0, -1.0, 1.0]) @ volume.affine[:3, 2]
    if float(slice_step @ normal_step) < 0:
        raise InputError(volume.source, "the slice axis runs against the row x column normal; reorient first")
    study_uid = identity.study_uid or identity.uid("study")
    series_uid = identity.series_uid or identity.uid("series")
    frame_uid = identity.frame_of_reference_uid or identity.uid("frame-of-reference")
    paths = []
    for k in range(volume.shape[2]):
        sop_uid = identity.uid(f"slice-{k}")
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.Modality = identity.modality
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.PatientName = identity.patient_name
        ds.PatientID = identity.patient_id
        ds.PatientBirthDate = identity.patient_birth_date
        ds.PatientSex = ""
        ds.StudyDate = identity.study_date
        ds.StudyTime = "120000"
        ds.StudyID = "1"
        ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        ds.Manufacturer = "LiverVAE"
        ds.SoftwareVersions = __version__
        ds.SeriesNumber = identity.series_number
        ds.SeriesDescription = identity.series_description
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [f"{v:.6f}" for v in origin + k * normal_step]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [f"{spacing[1]:.6f}", f"{spacing[0]:.6f}"]  # row spacing (between rows) first
        ds.SliceThickness = f"{spacing[2]:.6f}"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[0]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = RESCALE_INTERCEPT
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        path = folder / f"IM-{k + 1:04d}.dcm"
        with atomic_path(path) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
        paths.append(path)
    return paths
