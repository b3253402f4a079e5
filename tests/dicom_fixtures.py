"""Build DICOM fixtures in real layouts: CT series with highdicom Segmentations that reference them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from dicom_export import SeriesIdentity, write_ct_series
from pydicom.sr.codedict import codes

from livervae.io.volume import Volume


@dataclass
class SegmentSpec:
    """One segment to write: its label, coded type and voxel mask on the CT grid (i, j, k)."""

    label: str
    property_type: object
    mask: np.ndarray


def write_seg(ct_files: list[Path], segments: list[SegmentSpec], path: Path, series_number: int = 300) -> Path:
    """Write a BINARY DICOM-SEG over the CT slices `ct_files` (in volume slice order)."""
    sources = [pydicom.dcmread(f) for f in ct_files]
    pixels = np.stack([spec.mask.transpose(2, 1, 0) for spec in segments], axis=-1).astype(np.uint8)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=spec.label,
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=spec.property_type,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for number, spec in enumerate(segments, start=1)
    ]
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="LiverVAE tests",
        manufacturer_model_name="fixture",
        software_versions="0",
        device_serial_number="0",
        omit_empty_frames=True,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(path)
    return path


def write_study(image: Volume, folder: Path, seed: str, series_number: int = 2, description: str = "PV") -> list[Path]:
    """Write `image` as a CT series in `folder` with deterministic UIDs derived from `seed`."""
    identity = SeriesIdentity(
        uid_seed=seed,
        series_number=series_number,
        series_description=description,
        study_uid=pydicom.uid.generate_uid(entropy_srcs=[seed.split("/")[0], "study"]),
        frame_of_reference_uid=pydicom.uid.generate_uid(entropy_srcs=[seed.split("/")[0], "for"]),
    )
    return write_ct_series(image, folder, identity)
