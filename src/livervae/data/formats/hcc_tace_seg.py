"""`hcc-tace-seg`: TCIA HCC-TACE-Seg, one folder per patient (e.g. `HCC_001/`) with its CT series and a SEG.

Both TCIA download layouts work (descriptive `<study>/<series>/1-001.dcm` names or UID folders): every file
below a patient folder is scanned and the SEG's referenced series picks the CT among the phases. Segments
"Liver" → 1, "Mass"/tumour → 2, portal vein and aorta → background, or with `--vessels liver` liver where the
liver outline encloses them. The clinical sheet (`--clinical`, xlsx or csv, keyed by `TCIA_ID`) gives each
patient's tumour severity indicator.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from livervae.data.case import Case, safe_case_id
from livervae.data.clinical import read_clinical_sheet
from livervae.data.formats import SourceOptions
from livervae.data.formats._common import require_source
from livervae.data.formats.dicom_seg import read_study
from livervae.errors import InputError

logger = logging.getLogger(__name__)


def find_patient_folders(source: Path) -> list[Path]:
    """Return the patient folders below `source` (its non-hidden sub-folders), or `source` if it has none."""
    folders = [p for p in sorted(source.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    if not folders:
        raise InputError(source, "no patient folders found (expected e.g. HCC_001/ with a CT series and a SEG)")
    return folders


def iter_cases(source: Path | None, options: SourceOptions) -> Iterator[Case]:
    """Yield one labelled case per patient folder, with its clinical sheet row when a sheet is given."""
    source = require_source(source, "hcc-tace-seg")
    sheet = read_clinical_sheet(options.clinical_sheet) if options.clinical_sheet is not None else None
    patients = find_patient_folders(source)
    if sheet is not None:
        unmatched = sorted(set(sheet) - {p.name for p in patients})
        if unmatched:
            logger.info("%d patients of the clinical sheet have no image folder here", len(unmatched))
    for folder in patients:
        row = None
        if sheet is not None:
            row = sheet.get(folder.name)
            if row is None:
                logger.warning("%s: not in the clinical sheet; its severity indicator stays missing", folder.name)
        case = read_study(folder, options, safe_case_id(folder.name), clinical=row)
        case.extra["clinical_source"] = f"{options.clinical_sheet} ({folder.name})"
        yield case
