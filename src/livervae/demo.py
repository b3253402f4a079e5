"""`make demo`: the whole pipeline on the CPU in about two minutes, on the shipped real CT and synthetic CT.

1. Prepare 3D-IRCADb-01 patient 17 (read in place from the shared data folder; the derived label map stays under
   the run's output folder, as the dataset's no-derivatives licence requires) and a cohort of synthetic CT from
   real label maps (`synthetic-pool` preset, the shipped weights' training generator).
2. Take the two-stage bundle's shipped weights (`bundles/liver_tumor_ct_segmentation/models/model.pt`, trained on
   synthetic CT of another seed, so every demo case is unseen), or with `--train` train both stages briefly on
   the demo cases with the CPU preset (minutes, and a much weaker model).
3. Segment the real CT with the two-stage bundle (it never saw real data) and score it against the reference:
   label map, overlay PNG and a metrics report. The unseen synthetic CTs are scored too.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from livervae.bundle import LIVER_BUNDLE, TUMOR_BUNDLE, BundlePredictor, evaluate, train
from livervae.data.formats import SourceOptions
from livervae.data.preprocess import preprocess
from livervae.errors import InputError
from livervae.infer import format_summary, infer
from livervae.io.nifti import load_nifti
from livervae.metrics.report import SegmentationReport
from livervae.paths import DATA_DIR_ENV, real_case_dir, repo_root
from livervae.plots import save_overlay_png
from livervae.report import print_dataset_summary

logger = logging.getLogger(__name__)

IRCAD_ATTRIBUTION = "3D-IRCADb-01 patient 17, IRCAD (CC BY-NC-ND 3.0)"
REAL_CASE = "3dircadb1_17"
DEMO_MODES = ("shipped", "train", "prepare")

# The shipped weights trained on this generator with cohort seed 11 (pool) and were measured on seed 2026.
DEMO_PRESET = "synthetic-pool"
DEMO_SEED = 0


def shipped_model() -> Path:
    """The two-stage bundle's shipped weights (both stages in one checkpoint)."""
    return repo_root() / "bundles" / TUMOR_BUNDLE / "models" / "model.pt"


def _overlays(dataset: Path, out: Path, title_prefix: str, limit: int) -> list[Path]:
    written = []
    for image_path in sorted((dataset / "images").glob("*.nii.gz"))[:limit]:
        case_id = image_path.name.removesuffix(".nii.gz")
        label_path = dataset / "labels" / image_path.name
        image = load_nifti(image_path)
        label = load_nifti(label_path).array if label_path.exists() else None
        title = f"{title_prefix}: {case_id}"
        written.append(save_overlay_png(image, None, out / f"{case_id}.png", title=title, reference=label))
    return written


def prepare(out: Path, n_phantoms: int) -> dict[str, float]:
    """Prepare the real case and the synthetic CT cohort under `out`; print both summaries; return timings."""
    real_source = real_case_dir()
    if not real_source.is_dir():
        raise InputError(real_source, f"shipped real CT case not found; set {DATA_DIR_ENV} to the shared data folder")
    timings: dict[str, float] = {}
    start = time.perf_counter()
    real = preprocess("ircadb", real_source, out / "real", n_folds=1, overwrite=True)
    timings["real_case_preprocess_s"] = round(time.perf_counter() - start, 2)
    print_dataset_summary(real, out / "real")
    start = time.perf_counter()
    options = SourceOptions(phantom_n=n_phantoms, phantom_seed=DEMO_SEED, phantom_preset=DEMO_PRESET)
    folds = min(4, n_phantoms)
    phantoms = preprocess("phantom", None, out / "phantoms", options, n_folds=folds, overwrite=True)
    timings["phantom_cohort_s"] = round(time.perf_counter() - start, 2)
    print_dataset_summary(phantoms, out / "phantoms")
    return timings


def train_both(out: Path, liver_epochs: int, tumor_epochs: int) -> tuple[Path, Path, dict[str, float]]:
    """Train stage 1 then stage 2 on the demo phantoms (CPU preset); models go under `out/models`."""
    timings = {}
    start = time.perf_counter()
    liver = train(
        LIVER_BUNDLE,
        out / "phantoms",
        epochs=liver_epochs,
        output_dir=out / "runs" / "liver",
        preset="cpu",
        overrides={"ckpt_dir": str(out / "models" / "liver"), "val_interval": max(1, liver_epochs // 4)},
    )
    timings["liver_training_s"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    tumour = train(
        TUMOR_BUNDLE,
        out / "phantoms",
        epochs=tumor_epochs,
        output_dir=out / "runs" / "tumor",
        preset="cpu",
        overrides={
            "ckpt_dir": str(out / "models" / "tumor"),
            "liver_model_path": str(liver),
            "val_interval": max(1, tumor_epochs // 4),
        },
    )
    timings["tumor_training_s"] = round(time.perf_counter() - start, 1)
    return liver, tumour, timings


def score_real_case(out: Path, tumor_model: Path, device: str = "cpu") -> dict[str, Any]:
    """Segment the real CT with the two-stage model and score it against the 3D-IRCADb reference."""
    image_path = out / "real" / "images" / f"{REAL_CASE}.nii.gz"
    predictor = BundlePredictor(TUMOR_BUNDLE, model_path=tumor_model, device=device)
    summary = infer(image_path, out / "real_prediction" / f"{REAL_CASE}_seg.nii.gz", predictor=predictor)
    print("real CT: " + format_summary(summary))
    image = load_nifti(image_path)
    prediction = load_nifti(summary["output"]).array
    reference = load_nifti(out / "real" / "labels" / f"{REAL_CASE}.nii.gz").array
    report = SegmentationReport()
    report.add(REAL_CASE, prediction, reference, image, keep_overlay=False)
    result = report.write(out / "real_prediction" / "metrics", overlays=False)
    save_overlay_png(
        image,
        prediction,
        out / "real_prediction" / "metrics" / f"{REAL_CASE}_vs_reference.png",
        title=f"prediction (left) vs reference (right): {IRCAD_ATTRIBUTION}",
        reference=reference,
    )
    return result


def run_demo(
    out: Path,
    n_phantoms: int = 8,
    mode: str = "shipped",
    liver_epochs: int = 10,
    tumor_epochs: int = 8,
) -> dict[str, float]:
    """Run the demo under `out` and print what it did; return timings in seconds.

    Args:
        out: output folder.
        n_phantoms: synthetic CT cases to generate and score.
        mode: "shipped" scores the shipped weights, "train" trains both stages briefly first and scores those,
            "prepare" only prepares the data and its overlays.
        liver_epochs, tumor_epochs: the brief training's epochs ("train" only).

    Raises:
        InputError: an unknown mode, or "shipped" without the shipped weights.
    """
    if mode not in DEMO_MODES:
        raise InputError(None, f"unknown demo mode {mode!r}; choose one of {', '.join(DEMO_MODES)}")
    model = shipped_model()
    if mode == "shipped" and not model.is_file():
        raise InputError(
            model, "the shipped weights are missing; restore them with git, or run `make demo ARGS=--train`"
        )
    out = Path(out)
    start = time.perf_counter()
    timings = prepare(out, n_phantoms)
    overlays = _overlays(out / "real", out / "overlays", IRCAD_ATTRIBUTION, limit=1)
    overlays += _overlays(out / "phantoms", out / "overlays", "synthetic CT", limit=2)
    print("overlays of the inputs: " + ", ".join(str(p) for p in overlays))
    if mode != "prepare":
        if mode == "train":
            _, model, train_timings = train_both(out, liver_epochs, tumor_epochs)
            timings.update(train_timings)
            split, phantom_note = "val", "held-out synthetic CT (fold 0, held out of the brief training"
        else:
            split = "all"
            phantom_note = "unseen synthetic CT (shipped weights, trained on synthetic CT of another seed"
        print(f"model: {model}")
        eval_start = time.perf_counter()
        phantom_eval = evaluate(
            TUMOR_BUNDLE,
            out / "phantoms",
            fold=0,
            split=split,
            output_dir=out / "phantom_eval",
            device="cpu",
            overrides={"model_path": str(model)},
        )["summary"]
        timings["phantom_eval_s"] = round(time.perf_counter() - eval_start, 1)
        real_start = time.perf_counter()
        real = score_real_case(out, model)
        timings["real_case_inference_s"] = round(time.perf_counter() - real_start, 1)
        print(
            f"{phantom_note}; {phantom_eval['cases']} cases): liver Dice "
            f"{phantom_eval['liver_dice_mean']:.3f}, tumour Dice {phantom_eval['tumor_dice_mean']:.3f} "
            f"(global {phantom_eval['tumor_dice_global']:.3f})"
        )
        print(
            f"real CT ({IRCAD_ATTRIBUTION}; never in training): liver Dice {real['liver_dice_mean']:.3f}, "
            f"tumour Dice {real['tumor_dice_mean']:.3f}, lesions detected (LiTS, IoU > "
            f"{real['lesions']['min_overlap']:g}) {real['lesions']['detected']}/{real['lesions']['reference_lesions']}"
            f", by any overlap {real['lesions_any_overlap']['detected']}/{real['lesions']['reference_lesions']}"
        )
        print(f"look first at: {out / 'real_prediction' / 'metrics' / (REAL_CASE + '_vs_reference.png')}")
    timings["total_s"] = round(time.perf_counter() - start, 1)
    print(
        f"demo finished in {timings['total_s']:.0f} s (real case prepared in "
        f"{timings['real_case_preprocess_s']:.1f} s, {n_phantoms} synthetic CTs in "
        f"{timings['phantom_cohort_s']:.1f} s); "
        f"outputs under {out}"
    )
    return timings
