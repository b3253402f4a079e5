"""`livervae infer`: one CT (NIfTI file or DICOM series folder) → 0/1/2 label map in the input's geometry.

The label map is written atomically; a summary (liver and tumour volumes, lesion count) is printed and an
overlay PNG is written next to it. DICOM input is converted to a temporary NIfTI first (patient identifiers
are not carried over), so the prediction is on the DICOM series' own grid.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from livervae.bundle import TUMOUR_BUNDLE, BundlePredictor
from livervae.data.summary import summarise_case
from livervae.data.validation import check_ct_image
from livervae.errors import InputError
from livervae.io.dicom_series import read_dicom_series
from livervae.io.nifti import load_nifti, save_nifti
from livervae.io.volume import Volume
from livervae.plots import save_overlay_png

logger = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def overlay_path(output: Path) -> Path:
    """`<name>.png` next to `<name>.nii.gz`."""
    name = output.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return output.with_name(f"{name}.png")


def read_input(path: Path, series_uid: str | None = None) -> Volume:
    """Read a NIfTI CT or a DICOM series folder and check that it is a CT in HU."""
    if path.is_dir():
        volume = read_dicom_series(path, series_uid=series_uid).volume
    elif path.is_file() and path.name.endswith(NIFTI_SUFFIXES):
        volume = load_nifti(path)
    elif not path.exists():
        raise InputError(path, "input not found")
    else:
        raise InputError(path, "input must be a NIfTI file (.nii, .nii.gz) or a DICOM series folder")
    check_ct_image(volume)
    return volume


def infer(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    bundle: str = TUMOUR_BUNDLE,
    series_uid: str | None = None,
    device: str | None = None,
    predictor: BundlePredictor | None = None,
    overlay: bool = True,
    overrides: dict[str, Any] | None = None,
    allow_external: bool = False,
) -> dict[str, Any]:
    """Segment one CT and write its label map to `output_path`; return the case summary.

    The input is read and checked before any model is loaded, so bad input fails fast. `predictor` reuses a
    loaded model across calls; otherwise one is built from `bundle`, `device` and `overrides`.

    Raises:
        InputError: unreadable or non-CT input, or an output name that is not NIfTI.
        OutputError: the output cannot be written.
    """
    source, output = Path(input_path), Path(output_path)
    if not output.name.endswith(NIFTI_SUFFIXES):
        raise InputError(output, "output must end in .nii or .nii.gz")
    start = time.perf_counter()
    image = read_input(source, series_uid)
    predictor = predictor or BundlePredictor(bundle, device=device, overrides=overrides, allow_external=allow_external)
    if source.is_file():
        label = predictor.predict_volume(source, image)
    else:
        with tempfile.TemporaryDirectory(prefix="livervae-infer-") as tmp:
            staged = Path(tmp) / "image.nii"  # uncompressed: written and read once
            save_nifti(image, staged)
            label = predictor.predict_volume(staged, image)
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
        f"liver {summary['liver_ml']:.1f} mL, tumour {summary['tumour_ml']:.1f} mL in "
        f"{summary['lesion_count']} lesion(s); {summary['seconds']:.1f} s -> {summary['output']}"
    )
    return text + (f" (overlay {summary['overlay']})" if "overlay" in summary else "")
