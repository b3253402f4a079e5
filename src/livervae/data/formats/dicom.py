"""`dicom`: one DICOM CT series folder → one unlabelled case."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from livervae.data.case import Case, safe_case_id
from livervae.data.formats import SourceOptions
from livervae.data.formats._common import require_source
from livervae.io.archive import as_folder
from livervae.io.dicom_series import read_dicom_series


def iter_cases(source: Path | None, options: SourceOptions) -> Iterator[Case]:
    """Read the series in `source` (a folder or an archive of one) as a single case without labels."""
    source = require_source(source, "dicom")
    case_id = safe_case_id(options.case_id or source.name.split(".")[0])
    with as_folder(source) as folder:
        series = read_dicom_series(folder, series_uid=options.series_uid)
    series.volume.source = str(source)
    yield Case(case_id=case_id, patient_id=case_id, image=series.volume, extra={"series_uid": series.series_uid})
