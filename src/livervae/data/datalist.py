"""Read a normalised dataset's datalist.json into MONAI data dicts for one cross-validation fold."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from monai.data import load_decathlon_datalist

from livervae.errors import InputError

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "all", "test")


def load_fold(
    dataset_dir: str | os.PathLike[str], fold: int = 0, split: str = "train", negatives: bool | None = None
) -> list[dict[str, Any]]:
    """Return the entries of `split` for cross-validation fold `fold`, with absolute file paths.

    Args:
        dataset_dir: a folder written by `livervae preprocess` (holds datalist.json).
        fold: the held-out fold; "train" is every other fold, "val" is this one.
        split: "train", "val", "all" (every labelled case) or "test" (the unlabelled cases).
        negatives: keep the negative cases (labelled, no liver in view: `"negative": true`). Default: in "train"
            only, where the liver model learns to find no liver; Dice is undefined on them, so validation and
            evaluation leave them out, and the tumour stage (which crops the liver) passes False.

    Raises:
        InputError: missing datalist, an unknown split, a fold that does not exist, or entries whose files
            are missing.
    """
    dataset_dir = Path(dataset_dir)
    path = dataset_dir / "datalist.json"
    if not path.is_file():
        raise InputError(dataset_dir, "no datalist.json (prepare the dataset with `livervae preprocess`)")
    if split not in SPLITS:
        raise InputError(None, f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split == "test":
        if not json.loads(path.read_text()).get("testing"):
            return []
        entries = load_decathlon_datalist(path, is_segmentation=False, data_list_key="testing", base_dir=dataset_dir)
    else:
        entries = load_decathlon_datalist(path, is_segmentation=True, data_list_key="training", base_dir=dataset_dir)
        folds = sorted({int(e["fold"]) for e in entries})
        if split != "all" and fold not in folds:
            raise InputError(path, f"fold {fold} does not exist (folds: {folds})")
        if split == "train":
            others = [e for e in entries if int(e["fold"]) != fold]
            if not others:
                logger.warning("%s has a single fold: training and validating on the same cases", path)
            entries = others or entries
        elif split == "val":
            entries = [e for e in entries if int(e["fold"]) == fold]
    if not (split == "train" if negatives is None else negatives):
        entries = [e for e in entries if not e.get("negative", False)]
    # The flag is only read here: entries keep one set of keys, or MONAI's collate fails on a mixed batch.
    entries = [{k: v for k, v in e.items() if k != "negative"} for e in entries]
    for entry in entries:
        for key in ("image", "label"):
            if key in entry and not Path(entry[key]).is_file():
                raise InputError(path, f"entry {entry.get('case_id', '?')} points to a missing file {entry[key]}")
    return entries


def inference_inputs(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """List `{"image", "source_file"}` items for inference from a NIfTI file, a folder of NIfTI files, or a
    normalised dataset folder (its `images/`).

    Raises:
        InputError: the path does not exist or holds no NIfTI file.
    """
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        folder = path / "images" if (path / "images").is_dir() else path
        files = sorted(
            p for p in folder.iterdir() if p.name.endswith((".nii", ".nii.gz")) and not p.name.startswith(".")
        )
    else:
        raise InputError(path, "input not found")
    if not files:
        raise InputError(path, "no NIfTI (.nii, .nii.gz) files to segment")
    return [{"image": str(f.resolve()), "source_file": str(f.resolve())} for f in files]


def evaluation_inputs(dataset_dir: str | os.PathLike[str], fold: int = 0, split: str = "val") -> list[dict[str, str]]:
    """Like `load_fold`, as `{"image", "source_file", "reference_file"}` items for evaluation in the original space
    (the label is loaded after inference, so predictions are compared on the stored grid)."""
    return [
        {"image": e["image"], "source_file": e["image"], "reference_file": e["label"]}
        for e in load_fold(dataset_dir, fold, split)
    ]


def validation_or_training(dataset: Any, training_data: list[dict[str, Any]], transform: Any) -> Any:
    """The validation dataset, or, when it is empty, the training cases through the validation transforms.

    MONAI Label splits its labelled studies itself and leaves validation empty below three studies; without
    validation no metric is computed and no model is saved, so validating on the training cases is the useful
    fallback (logged, and only ever a fallback).
    """
    if len(dataset) > 0:
        return dataset
    from monai.data import Dataset

    logger.warning("no validation cases: validating on the %d training case(s)", len(training_data))
    return Dataset(training_data, transform=transform)
