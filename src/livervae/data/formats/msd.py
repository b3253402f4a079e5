"""`msd`: Medical Segmentation Decathlon Task03_Liver (`dataset.json`, `imagesTr/`, `labelsTr/`, `imagesTs/`).

Label values are mapped through `dataset.json`'s `labels` names (liver → 1, cancer/tumour → 2), so a
Decathlon-style dataset with another numbering still lands on 0/1/2. Files are taken from `dataset.json`'s
lists, never by globbing, so the macOS `._*` files shipped in the original tarball are never picked up.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from livervae.data.case import Case, safe_case_id
from livervae.data.formats import SourceOptions
from livervae.data.formats._common import require_source
from livervae.errors import InputError
from livervae.io.nifti import load_nifti
from livervae.io.volume import Volume
from livervae.labels import BACKGROUND, LIVER, TUMOR

_NAME_TO_LABEL = {
    "background": BACKGROUND,
    "liver": LIVER,
    "cancer": TUMOR,
    "tumor": TUMOR,
    "tumour": TUMOR,
    "lesion": TUMOR,
    "liver tumor": TUMOR,
    "liver tumour": TUMOR,
}


def read_dataset_json(source: Path) -> dict:
    """Read and check the Decathlon `dataset.json` of `source`."""
    path = source / "dataset.json"
    if not path.is_file():
        raise InputError(source, "no dataset.json (expected the Decathlon Task03_Liver layout)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"cannot read ({exc})") from exc
    for key in ("training", "labels"):
        if key not in meta:
            raise InputError(path, f"missing the {key!r} key")
    modality = meta.get("modality", {})
    if modality and str(modality.get("0", "CT")).upper() != "CT":
        raise InputError(path, f"modality is {modality.get('0')!r}, expected CT")
    return meta


def label_lookup(meta: dict, path: Path) -> np.ndarray:
    """Build a lookup table from the dataset's label values to LiverVAE's 0/1/2."""
    table = np.full(256, 255, dtype=np.uint8)
    for value, name in meta["labels"].items():
        key = str(name).strip().lower()
        if key not in _NAME_TO_LABEL:
            raise InputError(path, f"label {value} {name!r} is neither background, liver nor tumour")
        table[int(value)] = _NAME_TO_LABEL[key]
    return table


def _resolve(source: Path, relative: str, json_path: Path) -> Path:
    path = (source / relative).resolve()
    if not path.is_file():
        raise InputError(json_path, f"lists {relative}, which does not exist")
    return path


def iter_cases(source: Path | None, options: SourceOptions) -> Iterator[Case]:
    """Yield the training cases (labelled) and test images (unlabelled) listed in `dataset.json`."""
    source = require_source(source, "msd")
    meta = read_dataset_json(source)
    json_path = source / "dataset.json"
    table = label_lookup(meta, json_path)
    for entry in meta["training"]:
        image_path = _resolve(source, entry["image"], json_path)
        label_path = _resolve(source, entry["label"], json_path)
        image = load_nifti(image_path)
        raw = load_nifti(label_path)
        values = raw.array.astype(np.int64)
        if values.min() < 0 or values.max() > 255 or np.any(table[values] == 255):
            unknown = sorted(set(np.unique(values).tolist()) - {int(v) for v in meta["labels"]})
            raise InputError(label_path, f"label values {unknown} are not listed in dataset.json")
        label = Volume(array=table[values], affine=raw.affine, source=raw.source)
        case_id = safe_case_id(image_path.name.split(".")[0])
        yield Case(case_id=case_id, patient_id=case_id, image=image, label=label)
    for relative in meta.get("test", []):
        relative = relative["image"] if isinstance(relative, dict) else relative
        image_path = _resolve(source, relative, json_path)
        case_id = safe_case_id(image_path.name.split(".")[0])
        yield Case(case_id=case_id, patient_id=case_id, image=load_nifti(image_path))
