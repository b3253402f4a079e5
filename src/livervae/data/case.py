"""One patient case as the dataset adapters hand it to the writer."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from livervae.io.volume import Volume

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def safe_case_id(name: str) -> str:
    """Turn a folder or file name into a case id usable as a file name (letters, digits, `_`, `-`)."""
    cleaned = _UNSAFE.sub("_", name.strip()).strip("_-")
    return cleaned or "case"


@dataclass
class Case:
    """A CT volume, its optional 0/1/2 label map and what the dataset knows about the patient.

    Attributes:
        case_id: unique, file-name-safe id; names the output files.
        patient_id: groups cases of one patient so folds stay patient-disjoint (a pseudonym from the
            dataset's own naming, never a DICOM PatientID).
        image: CT in Hounsfield units.
        label: 0 background, 1 liver, 2 tumour on the image grid, or None for unlabelled cases.
        clinical: the patient's row of a clinical sheet (column name to raw value), if any.
        extra: adapter-specific facts worth keeping in the summary (e.g. the source series UID).
        negative: a labelled case known to show no liver (e.g. a generated chest or pelvis field of view): its
            empty label is the truth, not a mistake, and liver training learns from it to find none.
    """

    case_id: str
    patient_id: str
    image: Volume
    label: Volume | None = None
    clinical: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    negative: bool = False
