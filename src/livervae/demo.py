"""`make demo`: the data path end to end on the shipped real CT and on a phantom cohort.

Prepares 3D-IRCADb-01 patient 17 (read in place from the shared data folder; the derived label map stays under
the run's output folder, as the dataset's no-derivatives licence requires) and a synthetic cohort, prints both
dataset summaries and writes overlay PNGs.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from livervae.data.formats import SourceOptions
from livervae.data.preprocess import preprocess
from livervae.errors import InputError
from livervae.io.nifti import load_nifti
from livervae.paths import DATA_DIR_ENV, real_case_dir
from livervae.plots import save_overlay_png
from livervae.report import print_dataset_summary

logger = logging.getLogger(__name__)

IRCAD_ATTRIBUTION = "3D-IRCADb-01 patient 17, IRCAD (CC BY-NC-ND 3.0)"


def _overlays(dataset: Path, out: Path, title_prefix: str, limit: int) -> list[Path]:
    written = []
    for image_path in sorted((dataset / "images").glob("*.nii.gz"))[:limit]:
        case_id = image_path.name.removesuffix(".nii.gz")
        label_path = dataset / "labels" / image_path.name
        image = load_nifti(image_path)
        label = load_nifti(label_path).array if label_path.exists() else None
        written.append(save_overlay_png(image, label, out / f"{case_id}.png", title=f"{title_prefix}: {case_id}"))
    return written


def run_demo(out: Path, n_phantoms: int = 6) -> dict[str, float]:
    """Prepare the real case and `n_phantoms` phantoms under `out`, print summaries; return timings in seconds."""
    real_source = real_case_dir()
    if not real_source.is_dir():
        raise InputError(real_source, f"shipped real CT case not found; set {DATA_DIR_ENV} to the shared data folder")
    out = Path(out)
    timings: dict[str, float] = {}

    start = time.perf_counter()
    real = preprocess("ircadb", real_source, out / "real", n_folds=1, overwrite=True)
    timings["real_case_preprocess_s"] = round(time.perf_counter() - start, 2)
    print_dataset_summary(real, out / "real")

    start = time.perf_counter()
    options = SourceOptions(phantom_n=n_phantoms, phantom_seed=0)
    phantoms = preprocess("phantom", None, out / "phantoms", options, n_folds=min(5, n_phantoms), overwrite=True)
    timings["phantom_cohort_s"] = round(time.perf_counter() - start, 2)
    print_dataset_summary(phantoms, out / "phantoms")

    overlays = _overlays(out / "real", out / "overlays", IRCAD_ATTRIBUTION, limit=1)
    overlays += _overlays(out / "phantoms", out / "overlays", "synthetic phantom", limit=2)
    print("overlays: " + ", ".join(str(p) for p in overlays))
    print(
        f"real case prepared in {timings['real_case_preprocess_s']:.1f} s, "
        f"{n_phantoms} phantoms in {timings['phantom_cohort_s']:.1f} s; outputs under {out}"
    )
    return timings
