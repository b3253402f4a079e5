"""`livervae infer`: one CT (NIfTI file or DICOM series folder) → 0/1/2 label map in the input's geometry.

The output is a NIfTI label map (`.nii`, `.nii.gz`) on the input's grid, or, for a DICOM series input, a DICOM
Segmentation (`.dcm`) that references the series (`livervae.io.dicom_seg_writer`). A DICOM-SEG cannot be made
from a NIfTI input (there are no source instances to reference), so that combination is refused before any
model is loaded. Outputs are written atomically; a summary (liver and tumour volumes, lesion count) is printed
and an overlay PNG is written next to the output. DICOM input is converted to a temporary NIfTI first (patient
identifiers are not carried over), so the prediction is on the DICOM series' own grid.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from livervae.bundle import TUMOR_BUNDLE, BundlePredictor
from livervae.data.summary import summarise_case
from livervae.data.validation import check_ct_image
from livervae.errors import InputError
from livervae.io.dicom_seg_writer import write_dicom_seg
from livervae.io.dicom_series import DicomSeries, read_dicom_series, scan_dicom_files
from livervae.io.nifti import load_nifti, save_nifti
from livervae.io.volume import Volume
from livervae.plots import save_overlay_png

logger = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii", ".nii.gz")
DICOM_SEG_SUFFIXES = (".dcm",)


def overlay_path(output: Path) -> Path:
    """`<name>.png` next to `<name>.nii.gz` or `<name>.dcm`."""
    name = output.name
    for suffix in (".nii.gz", ".nii", ".dcm"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return output.with_name(f"{name}.png")


def read_input(
    path: Path, series_uid: str | None = None, files: Sequence[Path] | None = None
) -> tuple[Volume, DicomSeries | None]:
    """Read a NIfTI CT or a DICOM series folder and check that it is a CT in HU.

    Args:
        path: a NIfTI file or a DICOM folder.
        series_uid: the series to read when the folder holds several.
        files: the series' slice files when a caller already found them (a batch's tree walk); only these
            headers are read, not the whole folder's.

    Returns:
        The CT, and for DICOM input the series (files, UIDs, geometry) a DICOM-SEG output references.
    """
    series = None
    if path.is_dir():
        scan = scan_dicom_files(path, list(files)) if files else None
        series = read_dicom_series(path, series_uid=series_uid, scan=scan)
        volume = series.volume
    elif path.is_file() and path.name.endswith(NIFTI_SUFFIXES):
        volume = load_nifti(path)
    elif not path.exists():
        raise InputError(path, "input not found")
    else:
        raise InputError(path, "input must be a NIfTI file (.nii, .nii.gz) or a DICOM series folder")
    check_ct_image(volume)
    return volume, series


def check_output_name(source: Path, output: Path) -> None:
    """Refuse output names LiverVAE cannot write for `source`: not NIfTI or .dcm, or a SEG from a NIfTI input."""
    if output.name.endswith(DICOM_SEG_SUFFIXES):
        if source.is_file() or source.name.endswith(NIFTI_SUFFIXES):
            raise InputError(
                output,
                "a DICOM-SEG output needs a DICOM series input (the SEG references its source images); "
                "give the DICOM folder as input, or write .nii.gz",
            )
        return
    if not output.name.endswith(NIFTI_SUFFIXES):
        raise InputError(output, "output must end in .nii or .nii.gz (label map) or .dcm (DICOM-SEG)")


def infer(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    bundle: str = TUMOR_BUNDLE,
    series_uid: str | None = None,
    device: str | None = None,
    predictor: BundlePredictor | None = None,
    overlay: bool = True,
    overrides: dict[str, Any] | None = None,
    allow_external: bool = False,
    model_path: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Segment one CT and write its label map to `output_path`; return the case summary.

    The input is read and checked before any model is loaded, so bad input fails fast. `predictor` reuses a
    loaded model across calls; otherwise one is built from `bundle`, `device` and `overrides`.

    Raises:
        InputError: unreadable or non-CT input, an output name that is neither NIfTI nor .dcm, or a .dcm output
            for a NIfTI input.
        OutputError: the output cannot be written.
    """
    source, output = Path(input_path), Path(output_path)
    check_output_name(source, output)
    start = time.perf_counter()
    image, series = read_input(source, series_uid)
    predictor = predictor or BundlePredictor(
        bundle, model_path=model_path, device=device, overrides=overrides, allow_external=allow_external
    )
    with model_input(source, image) as image_file:
        label = predictor.predict_volume(image_file, image)
    return write_prediction(label, image, series, source, output, predictor, overlay, start)


@contextmanager
def model_input(source: Path, image: Volume) -> Iterator[Path]:
    """The NIfTI file the bundle's preprocessing reads: `source` itself, or DICOM input staged as a temporary
    NIfTI (removed afterwards). Staging is file work, kept apart from the model call so a batch worker can do it
    outside its model lock."""
    if source.is_file():
        yield source
        return
    with tempfile.TemporaryDirectory(prefix="livervae-infer-") as tmp:
        staged = Path(tmp) / "image.nii"  # uncompressed: written and read once
        save_nifti(image, staged)
        yield staged


def write_prediction(
    label: Volume,
    image: Volume,
    series: DicomSeries | None,
    source: Path,
    output: Path,
    predictor: BundlePredictor,
    overlay: bool,
    start: float,
) -> dict[str, Any]:
    """Write `label` as NIfTI or DICOM-SEG (by `output`'s suffix) and the overlay; return the case summary."""
    if output.name.endswith(DICOM_SEG_SUFFIXES):
        if series is None:
            raise InputError(output, "a DICOM-SEG output needs a DICOM series input")
        write_dicom_seg(label, series, output, bundle=predictor.name, bundle_version=predictor.version)
    else:
        save_nifti(label, output)
    summary = summarise_case(image, label.array)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    if overlay:
        summary["overlay"] = str(save_overlay_png(image, label.array, overlay_path(output), title=source.name))
    summary["output"] = str(output)
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """One line: volumes, lesion count, time and where the outputs are."""
    text = (
        f"liver {summary['liver_ml']:.1f} mL, tumour {summary['tumor_ml']:.1f} mL in "
        f"{summary['lesion_count']} lesion(s); {summary['seconds']:.1f} s -> {summary['output']}"
    )
    return text + (f" (overlay {summary['overlay']})" if "overlay" in summary else "")
