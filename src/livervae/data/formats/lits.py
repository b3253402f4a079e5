"""`lits`: the LiTS challenge layout, `volume-N.nii[.gz]` with `segmentation-N.nii[.gz]` (labels 0/1/2).

Files may sit in any sub-folders (the download comes as "Training Batch 1/2"). Volumes without a
segmentation (including `test-volume-N`) become unlabelled cases.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from livervae.data.case import Case
from livervae.data.formats import SourceOptions
from livervae.data.formats._common import require_source
from livervae.errors import InputError
from livervae.io.nifti import load_nifti

_PATTERN = re.compile(r"(test-volume|volume|segmentation)-(\d+)\.nii(\.gz)?")


def find_pairs(source: Path) -> list[tuple[str, Path, Path | None]]:
    """Return (case id, volume, segmentation or None) for every LiTS volume below `source`, by number."""
    volumes: dict[str, Path] = {}
    segmentations: dict[int, Path] = {}
    for path in sorted(source.rglob("*.nii*")):
        match = _PATTERN.fullmatch(path.name)
        if match is None or path.name.startswith("._"):
            continue
        kind, number = match.group(1), int(match.group(2))
        if kind == "segmentation":
            segmentations[number] = path
        elif kind == "volume":
            volumes[f"lits_{number:03d}"] = path
        else:
            volumes[f"lits_test_{number:03d}"] = path
    if not volumes:
        raise InputError(source, "no LiTS volume-N.nii files found")
    orphans = [n for n in segmentations if f"lits_{n:03d}" not in volumes]
    if orphans:
        raise InputError(segmentations[orphans[0]], f"segmentation without its volume-{orphans[0]}.nii")
    pairs = []
    for case_id, volume in sorted(volumes.items()):
        number = int(case_id.rsplit("_", 1)[1])
        segmentation = segmentations.get(number) if not case_id.startswith("lits_test_") else None
        pairs.append((case_id, volume, segmentation))
    return pairs


def iter_cases(source: Path | None, options: SourceOptions) -> Iterator[Case]:
    """Yield each LiTS volume with its segmentation (labels already 0 background, 1 liver, 2 tumour)."""
    source = require_source(source, "lits")
    for case_id, volume, segmentation in find_pairs(source):
        image = load_nifti(volume)
        label = load_nifti(segmentation) if segmentation is not None else None
        yield Case(case_id=case_id, patient_id=case_id, image=image, label=label)
