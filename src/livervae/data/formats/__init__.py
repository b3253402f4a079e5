"""Dataset adapters: each turns one public data layout into a stream of `Case` objects.

| format         | source layout                                                                        |
|----------------|--------------------------------------------------------------------------------------|
| `dicom`        | one DICOM CT series folder (unlabelled; `--series-uid` when it holds several)         |
| `ircadb`       | 3D-IRCADb-01 patient folder(s): `PATIENT_DICOM` and `MASKS_DICOM` (folders or archives) |
| `dicom-seg`    | a folder with one CT series and a DICOM-SEG that references it                        |
| `lits`         | LiTS `volume-N.nii[.gz]` and `segmentation-N.nii[.gz]` (any subfolders)                |
| `msd`          | Medical Segmentation Decathlon Task03_Liver: `dataset.json`, `imagesTr/`, `labelsTr/` |
| `hcc-tace-seg` | TCIA HCC-TACE-Seg: one folder per patient with CT series and a SEG; clinical sheet    |
| `phantom`      | the synthetic cohort, generated (no source needed)                                    |
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from livervae.data.case import Case


@dataclass
class SourceOptions:
    """Options some adapters use; each adapter ignores those it does not need.

    Attributes:
        series_uid: the CT series to read when a folder holds several (`dicom`, `dicom-seg`).
        case_id: the case id for single-case formats (`dicom`, `dicom-seg`); default is the folder name.
        clinical_sheet: HCC-TACE-Seg clinical spreadsheet (xlsx or csv) keyed by `TCIA_ID`.
        segment_map: DICOM-SEG segment roles (JSON file or `key=role,...`), merged over the defaults.
        vessels: vessel segments become "background" or, inside the liver outline, "liver".
        phantom_n: number of synthetic cases (`phantom`).
        phantom_seed: seed of the synthetic cohort (`phantom`).
        phantom_preset: "default" (about 1.5 mm in-plane, 2-3 mm slices) or "small" (about 3 mm, 4-5 mm slices:
            fast, for tests and the CPU demo).
        phantom_blurred_fraction: probability that a phantom lesion has a blurred margin; None keeps the
            preset's (0.45 by default). 1.0 gives the blurred-margin cohort of the active-contour ablation.
    """

    series_uid: str | None = None
    case_id: str | None = None
    clinical_sheet: Path | None = None
    segment_map: str | None = None
    vessels: str = "background"
    phantom_n: int = 8
    phantom_seed: int = 0
    phantom_preset: str = "default"
    phantom_blurred_fraction: float | None = None


Adapter = Callable[[Path | None, SourceOptions], Iterator[Case]]


_MODULES = {
    "dicom": "dicom",
    "ircadb": "ircadb",
    "dicom-seg": "dicom_seg",
    "lits": "lits",
    "msd": "msd",
    "hcc-tace-seg": "hcc_tace_seg",
    "phantom": "phantom",
}
FORMAT_NAMES = tuple(_MODULES)


def get_adapter(name: str) -> Adapter:
    """Return the adapter of format `name`, importing its module only when it is used."""
    module = importlib.import_module(f"livervae.data.formats.{_MODULES[name]}")
    return module.iter_cases
