"""Find the cases of a batch run: NIfTI files and DICOM CT series under a folder, or the rows of a manifest CSV.

A DICOM tree is walked once; its image slices are grouped by SeriesInstanceUID wherever they lie (a series may
span folders, a folder may hold several series). Each series is checked from its headers alone (Modality CT, not a
localizer, at least two slices, a geometry a regular grid can hold), so a study's scout, dose report or MR series
never reaches a worker. Where one study holds several CT series that pass, one is kept by `SERIES_RULE` unless
`all_series` is set; the others are listed as skipped with the reason.

Each case gets a mirrored output name under the output folder: `a/b.nii.gz` for `<input>/a/b.nii[.gz]`, and
`<series folder>.dcm` (DICOM-SEG) or `.nii.gz` for a DICOM series, with the series UID appended where several
series of one folder are segmented.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from livervae.errors import InputError, LiverVAEError
from livervae.io.dicom_series import (
    SEGMENTATION_STORAGE,
    SliceHeader,
    list_files,
    read_header,
    slice_header,
    sort_and_check_geometry,
)

logger = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii", ".nii.gz")
OutputFormat = Literal["auto", "nifti", "dicom-seg"]
# Files a DICOM tree often carries beside the slices; never opened as DICOM candidates.
_NOT_DICOM_SUFFIXES = {".csv", ".json", ".txt", ".md", ".png", ".jpg", ".jpeg", ".xml", ".xlsx", ".zip", ".gz", ".nrrd"}

SERIES_RULE = (
    "of several CT series in one study, the one with the most slices; on a tie the thinner slice spacing, "
    "then the lower SeriesInstanceUID"
)


@dataclass(frozen=True)
class BatchCase:
    """One CT to segment.

    Attributes:
        case: the manifest key: the input's path relative to the batch input (plus `#<series UID>` for DICOM).
        input: a NIfTI file, or the folder holding the series' slices.
        output: where its label map goes (.nii.gz, or .dcm for a DICOM-SEG).
        series_uid: the DICOM series to read ("" for NIfTI).
        files: the series' slice files (empty for NIfTI); workers read these, not the whole folder.
    """

    case: str
    input: Path
    output: Path
    series_uid: str = ""
    files: tuple[Path, ...] = ()

    def row(self, **fields: Any) -> dict[str, Any]:
        """This case's manifest row with `fields` (status, reason, ...) set."""
        return {
            "case": self.case,
            "input": str(self.input),
            "series_uid": self.series_uid,
            "output": str(self.output),
            **fields,
        }


@dataclass(frozen=True)
class SkippedInput:
    """An input the batch does not segment, with the one-line reason (a non-CT series, a corrupt file...).

    `failed` marks inputs that look like cases but cannot be read (they count as failed, and a rerun retries
    them); the others (an MR series, a localizer, a second CT series of a study) are skipped for good.
    """

    case: str
    input: Path
    reason: str
    series_uid: str = ""
    failed: bool = False


@dataclass
class Discovery:
    """What a walk found: the cases to run and the inputs left out."""

    cases: list[BatchCase] = field(default_factory=list)
    skipped: list[SkippedInput] = field(default_factory=list)


def _relative(path: Path, root: Path) -> str:
    relative = path.relative_to(root).as_posix() if path != root else ""
    return relative or path.name


def _strip_nifti_suffix(name: str) -> str:
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _output_suffix(is_dicom: bool, output_format: OutputFormat, source: Path | None = None) -> str:
    if output_format == "nifti" or not is_dicom:
        if output_format == "dicom-seg":
            raise InputError(source, "--output-format dicom-seg needs DICOM input (a SEG references its source images)")
        return ".nii.gz"
    return ".dcm"


def _series_spacing(headers: list[SliceHeader]) -> float:
    normal = np.cross(headers[0].orientation[:3], headers[0].orientation[3:])
    distances = np.sort(np.asarray([h.position for h in headers]) @ normal)
    return float(np.median(np.diff(distances)))


def _check_series(folder: Path, headers: list[SliceHeader]) -> tuple[list[SliceHeader] | None, str, bool]:
    """(sorted headers, "", False) for a CT volume; (None, reason, failed) otherwise."""
    first = headers[0]
    if first.modality.upper() != "CT":
        return None, f"Modality {first.modality or 'missing'}, not CT", False
    if any(h.is_localizer for h in headers):
        return None, "a localizer (ImageType LOCALIZER), not a volume", False
    try:
        return sort_and_check_geometry(folder, headers), "", False
    except InputError as exc:
        return None, exc.problem, True


def _series_folder(headers: list[SliceHeader]) -> Path:
    return Path(os.path.commonpath([str(h.path.parent) for h in headers]))


def discover_dicom(
    root: Path, files: list[Path], output_dir: Path, all_series: bool, output_format: OutputFormat
) -> Discovery:
    """Group `files` (DICOM candidates below `root`) into series and turn the CT volumes into cases."""
    found = Discovery()
    series: dict[str, list[SliceHeader]] = defaultdict(list)
    for path in files:
        try:
            dataset = read_header(path)
            if dataset is None or str(dataset.get("SOPClassUID", "")) == SEGMENTATION_STORAGE:
                continue
            header = slice_header(path, dataset)
        except LiverVAEError as exc:
            found.skipped.append(SkippedInput(_relative(path, root), path, _problem(exc), failed=True))
            continue
        if header is not None:
            series[header.series_uid].append(header)

    by_study: dict[str, list[tuple[str, list[SliceHeader], float]]] = defaultdict(list)
    folders: dict[str, Path] = {}
    for uid, headers in series.items():
        folder = _series_folder(headers)
        folders[uid] = folder
        checked, reason, failed = _check_series(folder, headers)
        if checked is None:
            case = f"{_relative(folder, root)}#{uid}"
            found.skipped.append(SkippedInput(case, folder, reason, uid, failed))
            continue
        by_study[checked[0].study_uid].append((uid, checked, _series_spacing(checked)))

    uids_per_folder: dict[Path, int] = defaultdict(int)
    chosen: list[tuple[str, list[SliceHeader]]] = []
    for study_series in by_study.values():
        ranked = sorted(study_series, key=lambda item: (-len(item[1]), item[2], item[0]))
        keep = ranked if all_series else ranked[:1]
        for uid, headers, _ in keep:
            chosen.append((uid, headers))
            uids_per_folder[folders[uid]] += 1
        for uid, headers, _ in ranked[len(keep) :]:
            case = f"{_relative(folders[uid], root)}#{uid}"
            reason = f"another CT series of the study was chosen ({ranked[0][0]}); use --all-series to keep all"
            found.skipped.append(SkippedInput(case, folders[uid], reason, uid))

    suffix = _output_suffix(True, output_format)
    for uid, headers in chosen:
        folder = folders[uid]
        relative = _relative(folder, root)
        name = f"{relative}/{uid}" if uids_per_folder[folder] > 1 else relative
        found.cases.append(
            BatchCase(
                case=f"{relative}#{uid}",
                input=folder,
                output=output_dir / f"{name}{suffix}",
                series_uid=uid,
                files=tuple(h.path for h in headers),
            )
        )
    return found


def _problem(exc: LiverVAEError) -> str:
    return getattr(exc, "problem", None) or str(exc)


def discover_folder(
    root: Path, output_dir: Path, all_series: bool = False, output_format: OutputFormat = "auto"
) -> Discovery:
    """Every NIfTI file and DICOM CT series below `root`, as cases with mirrored output names.

    The output folder is left out of the walk when it lies inside `root`.
    """
    nifti: list[Path] = []
    candidates: list[Path] = []
    output_dir = output_dir.resolve()
    for path in list_files(root):
        if output_dir in path.resolve().parents:
            continue
        if path.name.endswith(NIFTI_SUFFIXES):
            nifti.append(path)
        elif path.suffix.lower() not in _NOT_DICOM_SUFFIXES:
            candidates.append(path)
    found = discover_dicom(root, candidates, output_dir, all_series, output_format)
    for path in nifti:
        relative = _relative(path, root)
        output = output_dir / f"{_strip_nifti_suffix(relative)}{_output_suffix(False, output_format, path)}"
        found.cases.append(BatchCase(case=relative, input=path, output=output))
    found.cases.sort(key=lambda c: c.case)
    found.skipped.sort(key=lambda s: s.case)
    return found


def _mirror_name(path: Path, base: Path) -> str:
    """The output name of a manifest row's input: relative to the manifest's folder, else its absolute path
    without the root, so an output never lands on (or outside the output folder from) an absolute input."""
    if not path.is_absolute():
        return path.as_posix().rstrip("/")
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.relative_to(path.anchor).as_posix()


def read_manifest_inputs(path: Path, output_dir: Path, output_format: OutputFormat = "auto") -> Discovery:
    """The cases of a user's CSV: column `input` (NIfTI file or DICOM folder), optional `series_uid`, `output`.

    Relative inputs are taken from the CSV's folder, relative outputs from `output_dir`. A DICOM folder row
    without `series_uid` is walked like a batch input folder (one study's series rule applies).

    Raises:
        InputError: the file cannot be read, lacks the `input` column, or names an input twice.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"cannot read the manifest ({exc})") from exc
    if not rows or "input" not in rows[0]:
        raise InputError(path, "a manifest CSV needs a header row with an 'input' column")
    found = Discovery()
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):
        text = (row.get("input") or "").strip()
        if not text:
            raise InputError(path, f"line {line}: empty 'input'")
        source = Path(text) if Path(text).is_absolute() else path.parent / text
        name = _mirror_name(Path(text), path.parent)
        series_uid = (row.get("series_uid") or "").strip()
        output_text = (row.get("output") or "").strip()
        if source.is_dir():
            sub = discover_folder(source, output_dir, all_series=False, output_format=output_format)
            sub_cases = [c for c in sub.cases if not series_uid or c.series_uid == series_uid]
            if series_uid and not sub_cases:
                found.skipped.append(
                    SkippedInput(text, source, f"no CT series {series_uid} found", series_uid, failed=True)
                )
            for case in sub_cases:
                output = case.output
                if output_text:
                    output = Path(output_text) if Path(output_text).is_absolute() else output_dir / output_text
                elif len(sub_cases) == 1:
                    output = output_dir / f"{name}{_output_suffix(True, output_format)}"
                renamed = BatchCase(f"{text}#{case.series_uid}", case.input, output, case.series_uid, case.files)
                found.cases.append(renamed)
            found.skipped.extend(
                SkippedInput(f"{text}/{s.case}", s.input, s.reason, s.series_uid, s.failed) for s in sub.skipped
            )
        else:
            output = output_dir / f"{_strip_nifti_suffix(name)}{_output_suffix(False, output_format, source)}"
            if output_text:
                output = Path(output_text) if Path(output_text).is_absolute() else output_dir / output_text
            found.cases.append(BatchCase(case=text, input=source, output=output))
    for case in found.cases:
        if case.case in seen:
            raise InputError(path, f"names the input {case.case} twice")
        seen.add(case.case)
    return found


def discover(
    source: Path, output_dir: Path, all_series: bool = False, output_format: OutputFormat = "auto"
) -> Discovery:
    """The cases of a batch input: a folder (NIfTI files, DICOM tree) or a manifest `.csv`.

    Raises:
        InputError: the input does not exist, or is neither a folder nor a `.csv`; two cases would write one output.
    """
    if source.is_dir():
        found = discover_folder(source, output_dir, all_series, output_format)
    elif source.is_file() and source.suffix.lower() == ".csv":
        found = read_manifest_inputs(source, output_dir, output_format)
    elif not source.exists():
        raise InputError(source, "input not found")
    else:
        raise InputError(source, "batch input must be a folder (NIfTI files, DICOM tree) or a manifest .csv")
    outputs: dict[Path, str] = {}
    for case in found.cases:
        if case.output in outputs:
            raise InputError(source, f"{outputs[case.output]} and {case.case} would both write {case.output}")
        outputs[case.output] = case.case
    return found
