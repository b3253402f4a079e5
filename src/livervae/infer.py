"""`livervae infer`: one CT (NIfTI file or DICOM series folder) → 0/1/2 label map in the input's geometry.

The output is a NIfTI label map (`.nii`, `.nii.gz`) on the input's grid, or, for a DICOM series input, a DICOM
Segmentation (`.dcm`) that references the series (`livervae.io.dicom_seg_writer`). A DICOM-SEG cannot be made
from a NIfTI input (there are no source instances to reference), so that combination is refused before any
model is loaded. Beside the label map go its measurements (`<name>.json`, `<name>.csv`; `livervae.measurements`),
for a DICOM-SEG a DICOM SR measurement report (`<name>_sr.dcm`; `livervae.io.dicom_sr_writer`), an overlay PNG,
and on request (`uncertainty_path`) the voxel uncertainty maps with their picture and the case quality
(`livervae.uncertainty`). All of a case's files are written atomically and together, or none. The command line
prints the measurement table (and the quality line). DICOM input is converted to a temporary NIfTI first
(patient identifiers are not carried over), so the prediction is on the DICOM series' own grid.
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

from livervae.bundle import TUMOR_BUNDLE, BundlePredictor, UncertainPrediction, label_volume
from livervae.data.validation import check_ct_image
from livervae.errors import InputError
from livervae.io.dicom_seg_writer import build_dicom_seg, build_probability_seg, save_dicom
from livervae.io.dicom_series import DicomSeries, read_dicom_series, scan_dicom_files
from livervae.io.dicom_sr_writer import build_dicom_sr, sr_path
from livervae.io.nifti import load_nifti, save_nifti
from livervae.io.volume import Volume
from livervae.labels import BACKGROUND, LABEL_NAMES, LIVER, TUMOR
from livervae.measurements import (
    CaseMeasurements,
    format_measurement_table,
    measure_case,
    measurement_paths,
    output_stem,
    write_measurements,
)
from livervae.plots import save_overlay_png, save_uncertainty_png
from livervae.uncertainty import save_uncertainty_map

logger = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii", ".nii.gz")
DICOM_SEG_SUFFIXES = (".dcm",)


def overlay_path(output: Path) -> Path:
    """`<name>.png` next to `<name>.nii.gz` or `<name>.dcm`."""
    return output.with_name(f"{output_stem(output)}.png")


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
    uncertainty_path: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Segment one CT and write its label map to `output_path`; return the case summary.

    The input is read and checked before any model is loaded, so bad input fails fast. `predictor` reuses a
    loaded model across calls; otherwise one is built from `bundle`, `device` and `overrides`. With
    `uncertainty_path` (two-stage bundle only) the voxel maps go there and the case quality into the summary
    and the measurements JSON (`livervae.uncertainty`).

    Raises:
        InputError: unreadable or non-CT input, an output name that is neither NIfTI nor .dcm, a .dcm output
            for a NIfTI input, or an uncertainty map name that is not NIfTI or is another output's.
        OutputError: the output cannot be written.
    """
    source, output = Path(input_path), Path(output_path)
    check_output_name(source, output)
    uncertainty_file = Path(uncertainty_path) if uncertainty_path is not None else None
    if uncertainty_file is not None:
        check_uncertainty_name(output, uncertainty_file)
    start = time.perf_counter()
    image, series = read_input(source, series_uid)
    predictor = predictor or BundlePredictor(
        bundle, model_path=model_path, device=device, overrides=overrides, allow_external=allow_external
    )
    uncertain = None
    with model_input(source, image) as image_file:
        if uncertainty_file is None:
            label = predictor.predict_volume(image_file, image)
        else:
            uncertain = predictor.predict_with_uncertainty(image_file)
            label = label_volume(uncertain.label, image)
    return write_prediction(
        label, image, series, source, output, predictor, overlay, start, uncertain, uncertainty_file
    )


def uncertainty_path_for(output: Path) -> Path:
    """`<name>_uncertainty.nii.gz` beside an output `<name>.nii.gz`, `<name>.nii` or `<name>.dcm` (the maps' default
    place: `--uncertainty` without a file name, and every case of a batch)."""
    return output.with_name(f"{output_stem(output)}_uncertainty.nii.gz")


def probability_seg_path(output: Path) -> Path:
    """`<name>_probability.dcm` beside a DICOM-SEG `<name>.dcm`: the FRACTIONAL SEG of P(liver) and P(tumour)."""
    return output.with_name(f"{output_stem(output)}_probability.dcm")


def check_uncertainty_name(output: Path, uncertainty: Path) -> None:
    """Refuse an uncertainty map name that is not NIfTI, or that is the name of another output of the case."""
    if not uncertainty.name.endswith(NIFTI_SUFFIXES):
        raise InputError(uncertainty, "the uncertainty map is written as NIfTI: end its name in .nii or .nii.gz")
    others = {output, *measurement_paths(output), overlay_path(output), sr_path(output), overlay_path(uncertainty)}
    if uncertainty.resolve() in {path.resolve() for path in others}:
        raise InputError(uncertainty, "the uncertainty map would overwrite another output of this case")


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
    uncertainty: UncertainPrediction | None = None,
    uncertainty_path: Path | None = None,
) -> dict[str, Any]:
    """Write `label` as NIfTI or DICOM-SEG (by `output`'s suffix) with its measurements; return the case summary.

    With `uncertainty` its case quality goes into the measurements JSON and the summary (`quality`), beside a
    DICOM-SEG goes a FRACTIONAL SEG of P(liver) and P(tumour) (`<name>_probability.dcm`), and with
    `uncertainty_path` its voxel maps are written there (and, with `overlay`, their picture beside them).

    Beside `<name>.nii.gz` / `<name>.nii` / `<name>.dcm` go the measurements `<name>.json` and `<name>.csv`
    (`livervae.measurements`, measured once here), for a DICOM-SEG the DICOM SR measurement report
    `<name>_sr.dcm` that references it and the series (`livervae.io.dicom_sr_writer`), and with `overlay` the
    overlay `<name>.png`.

    All or nothing: the measurements, the SEG and the SR are built before any file is written, and when writing
    one of the files fails, the ones this call already placed are removed again (an output it replaced is not
    brought back). So a label map never stands without its measurements, and a batch rerun can take an existing
    output as a finished case.

    Returns:
        The summary: `liver_ml`, `tumor_ml`, `tumor_burden_percent` (None without liver), `lesion_count`,
        `liver_voxels`, `tumor_voxels`, `label_voxels` (per label name), `lesion_volumes_ml` (largest first), all
        as in the JSON file; `seconds`; the paths written: `output`, `measurements_json`, `measurements_csv`, and
        `sr`, `overlay` when written; and `measurements`, the `CaseMeasurements` (not JSON-serialisable).

    Raises:
        InputError: a DICOM-SEG output without a DICOM series, or a label map or measurements that cannot be
            written as a SEG and SR of the series (the message names the file).
        OutputError: a file cannot be written (the message names it).
    """
    measurements = measure_case(image, label.array)
    quality = uncertainty.quality.to_dict() if uncertainty is not None else None
    seg = sr = probability_seg = None
    if output.name.endswith(DICOM_SEG_SUFFIXES):
        if series is None:
            raise InputError(output, "a DICOM-SEG output needs a DICOM series input")
        identity = {"bundle": predictor.name, "bundle_version": predictor.version}
        seg = build_dicom_seg(label, series, **identity)
        sr = build_dicom_sr(measurements, seg, series, **identity, seg_name=str(sr_path(output)))
        if uncertainty is not None:
            probability_seg = build_probability_seg(uncertainty.maps[:2], series, **identity)
    paths: dict[str, str] = {"output": str(output)}
    placed: list[Path] = []
    try:
        if seg is not None:
            placed.append(save_dicom(seg, output))
            placed.append(save_dicom(sr, sr_path(output)))
            paths["sr"] = str(placed[-1])
            if probability_seg is not None:
                placed.append(save_dicom(probability_seg, probability_seg_path(output)))
                paths["probability_seg"] = str(placed[-1])
        else:
            placed.append(save_nifti(label, output))
        json_path, csv_path = write_measurements(measurements, output, source=source.name, quality=quality)
        placed += [json_path, csv_path]
        paths.update(measurements_json=str(json_path), measurements_csv=str(csv_path))
        if overlay:
            placed.append(save_overlay_png(image, label.array, overlay_path(output), title=source.name))
            paths["overlay"] = str(placed[-1])
        if uncertainty is not None and uncertainty_path is not None:
            placed.append(save_uncertainty_map(uncertainty.maps, image.affine, uncertainty_path))
            paths["uncertainty"] = str(placed[-1])
            if overlay:
                title = f"{source.name}: {format_quality(quality)}"
                placed.append(
                    save_uncertainty_png(image, label.array, uncertainty.maps, overlay_path(uncertainty_path), title)
                )
                paths["uncertainty_overlay"] = str(placed[-1])
    except BaseException:
        for path in reversed(placed):
            path.unlink(missing_ok=True)
        raise
    summary = _measurement_summary(measurements, label.array.size)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    summary.update(paths)
    if quality is not None:
        summary["quality"] = quality
    summary["measurements"] = measurements
    return summary


def _measurement_summary(measurements: CaseMeasurements, voxels: int) -> dict[str, Any]:
    """The summary's volumes and counts, taken from the measurements (rounded as in their JSON file) of a 0/1/2
    label map of `voxels` voxels: what `livervae.data.summary.summarise_case` reports, without labelling again."""
    values = measurements.to_dict()
    summary = {
        key: values[key]
        for key in ("liver_ml", "tumor_ml", "tumor_burden_percent", "lesion_count", "liver_voxels", "tumor_voxels")
    }
    summary["label_voxels"] = {
        LABEL_NAMES[BACKGROUND]: voxels - measurements.liver_voxels,
        LABEL_NAMES[LIVER]: measurements.liver_voxels - measurements.tumor_voxels,
        LABEL_NAMES[TUMOR]: measurements.tumor_voxels,
    }
    summary["lesion_volumes_ml"] = [lesion["volume_ml"] for lesion in values["lesions"]]
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """One line: volumes, lesion count, time and where the label map and overlay are."""
    text = (
        f"liver {summary['liver_ml']:.1f} mL, tumour {summary['tumor_ml']:.1f} mL in "
        f"{summary['lesion_count']} lesion(s); {summary['seconds']:.1f} s -> {summary['output']}"
    )
    return text + (f" (overlay {summary['overlay']})" if "overlay" in summary else "")


def format_outputs(summary: dict[str, Any]) -> str:
    """One line: the time taken and every file `write_prediction` wrote."""
    parts = [f"label map {summary['output']}"]
    if "sr" in summary:
        parts = [f"DICOM-SEG {summary['output']}", f"SR {summary['sr']}"]
    parts.append(f"measurements {summary['measurements_json']}, {summary['measurements_csv']}")
    if "overlay" in summary:
        parts.append(f"overlay {summary['overlay']}")
    if "probability_seg" in summary:
        parts.append(f"probability SEG {summary['probability_seg']}")
    if "uncertainty" in summary:
        parts.append(f"uncertainty {summary['uncertainty']}")
    if "uncertainty_overlay" in summary:
        parts.append(f"uncertainty overlay {summary['uncertainty_overlay']}")
    return f"{summary['seconds']:.1f} s -> " + "; ".join(parts)


def format_quality(quality: dict[str, Any]) -> str:
    """One line: the case quality score, its parts and whether the case needs review (and why)."""
    ratio = quality.get("reconstruction_ratio")
    text = (
        f"quality {quality['score']:.2f} (expected Dice liver {quality['liver_expected_dice']:.2f}, tumour "
        f"{quality['tumor_expected_dice']:.2f}"
        + (f"; reconstruction {ratio:.2f}x the training data's" if ratio is not None else "")
        + ")"
    )
    if quality["needs_review"]:
        return f"{text}: NEEDS REVIEW ({'; '.join(quality['reasons'])})"
    return f"{text}: no review flag"


def format_report(summary: dict[str, Any]) -> str:
    """What `livervae infer` prints: the measurement table, the case quality when measured, then where the outputs
    are (`format_outputs`)."""
    lines = [format_measurement_table(summary["measurements"])]
    if "quality" in summary:
        lines.append(format_quality(summary["quality"]))
    return "\n".join([*lines, format_outputs(summary)])
