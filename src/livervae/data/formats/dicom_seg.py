"""`dicom-seg`: a folder holding a CT series and a DICOM-SEG that references it → one labelled case.

The SEG's ReferencedSeriesSequence picks the CT series when the folder holds several (multiphase studies);
segments get their roles from the segment map (see `livervae.io.dicom_seg`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from livervae.data.case import Case, safe_case_id
from livervae.data.formats import SourceOptions
from livervae.data.formats._common import require_source
from livervae.errors import InputError
from livervae.io.dicom_seg import parse_segment_map, read_dicom_seg_labels
from livervae.io.dicom_series import DicomFolderScan, read_dicom_series, scan_dicom_folder


def referenced_series_uid(scan: DicomFolderScan, seg_path: Path, dataset: Any, series_uid: str | None) -> str | None:
    """The CT series a SEG annotates: `series_uid` if given, else its first ReferencedSeriesSequence entry."""
    if series_uid is not None:
        return series_uid
    referenced = [str(item.SeriesInstanceUID) for item in dataset.get("ReferencedSeriesSequence", [])]
    for uid in referenced:
        if uid in scan.series:
            return uid
    if referenced:
        raise InputError(seg_path, f"references series {referenced[0]}, which is not in {scan.folder}")
    return None


def read_study(folder: Path, options: SourceOptions, case_id: str, clinical: dict[str, Any] | None = None) -> Case:
    """Read the CT series and its one DICOM-SEG from `folder` into a labelled case."""
    scan = scan_dicom_folder(folder)
    if not scan.segmentations:
        raise InputError(folder, "no DICOM Segmentation object found")
    if len(scan.segmentations) > 1:
        names = ", ".join(path.name for path, _ in scan.segmentations)
        raise InputError(folder, f"holds {len(scan.segmentations)} DICOM-SEG files ({names}); keep one per folder")
    seg_path, dataset = scan.segmentations[0]
    uid = referenced_series_uid(scan, seg_path, dataset, options.series_uid)
    ct = read_dicom_series(folder, series_uid=uid, scan=scan)
    label = read_dicom_seg_labels(seg_path, ct, parse_segment_map(options.segment_map), options.vessels)
    return Case(
        case_id=case_id,
        patient_id=case_id,
        image=ct.volume,
        label=label,
        clinical=clinical,
        extra={"series_uid": ct.series_uid, "seg_file": seg_path.name},
    )


def iter_cases(source: Path | None, options: SourceOptions) -> Iterator[Case]:
    """Yield the one labelled case held in the `source` folder."""
    source = require_source(source, "dicom-seg")
    yield read_study(source, options, safe_case_id(options.case_id or source.name))
