"""Sim-to-real: train on synthetic data only, measure on real CT beside unseen synthetic cases.

For each training-data variant (`--variants`), with the same budget for each:

- parametric: today's parametric phantom (`livervae.data.phantom`, default preset);
- synthetic: CT generated from real label maps (`livervae.data.synthetic`, training-pool preset);
- synthetic_fixed_intensity: the same without intensity randomisation (one portal-venous appearance);
- synthetic_simple_tumours: the same with flat, sharp ellipsoid lesions instead of the Hu et al. tumour model;
- synthetic_mix: `synthetic` plus the BodyParts3D organs on half the cases and 8 % no-liver cases (the
  `synthetic-train` preset, the shipped liver model's training data);
- synthetic_generated: `synthetic` cases generated while training (the bundles' `synthetic_preset`, cohort seed
  100) instead of the fixed pool: a window as large as the pool's training part, a quarter of it new every epoch,
  so the same iterations see new cases; the pool's fold 0 still validates.

(The parametric row is the ablation of the real anatomy.) Each variant gets a pool of `--train-cases` cases
(cohort seed 11; one fold of `--folds` held out for validation), stage 1 (liver_ct_segmentation, CPU preset,
learning rate 1e-3, two crops per case) is trained from scratch for `--iterations` iterations (batch 2), and
with `--tumour-iterations` > 0 stage 2 (liver_tumor_ct_segmentation, 48 mm patches, four crops) on the same pool
with that stage 1, from scratch or fine-tuned from `--tumour-init` (e.g. the shipped two-stage weights). Then
measured, never trained on or tuned to:

- real CT: 3D-IRCADb-01 patient 17 (the shared data folder): liver Dice, liver volume error; with stage 2 also
  tumour Dice, lesions found by the LiTS criterion, false-positive lesions;
- two real CTs with no liver in view (TotalSegmentator s0002 neck, s0003): liver mL predicted (target < 5 mL);
- unseen cases of both generators (cohort seed 2026): the same metrics.

    python benchmarks/sim_to_real.py [--variants parametric synthetic] [--train-cases 24] [--iterations 120]
        [--tumour-iterations 0] [--tumour-init bundles/liver_tumor_ct_segmentation/models/model.pt]
        [--out runs/bench/sim_to_real] [--json out.json]

The README's sim-to-real table is this script at a larger budget (its command is written beside the table).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling scripts, not a package
from machine import describe  # noqa: E402

VARIANTS = (
    "parametric",
    "synthetic",
    "synthetic_fixed_intensity",
    "synthetic_simple_tumours",
    "synthetic_mix",
    "synthetic_generated",
)
TRAIN_SEED, TEST_SEED, GENERATED_SEED = 11, 2026, 100
BATCH = 2  # the CPU preset's batch size: iterations per epoch = training cases / 2


def _cohort(variant: str, n: int, seed: int) -> Iterator[Any]:
    from livervae.data.phantom import PhantomConfig, generate_cohort
    from livervae.data.synthetic.generator import SyntheticConfig, generate_synthetic_cohort

    if variant == "parametric":
        return generate_cohort(n, seed, PhantomConfig())
    config = SyntheticConfig.training_pool()
    if variant == "synthetic_fixed_intensity":
        config = dataclasses.replace(config, randomise_intensity=False)
    elif variant == "synthetic_simple_tumours":
        config = dataclasses.replace(config, tumour_model="simple")
    elif variant == "synthetic_mix":
        config = SyntheticConfig.training_mix()
    elif variant not in ("synthetic", "synthetic_generated"):  # the generated variant's pool only validates
        raise SystemExit(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    return generate_synthetic_cohort(n, seed, config)


def write_dataset(variant: str, n: int, seed: int, out: Path, folds: int) -> Path:
    """Generate a cohort into a normalised dataset folder (kept when it exists: reruns reuse it)."""
    from livervae.data.writer import DatasetWriter
    from livervae.io.atomic import atomic_directory

    if (out / "datalist.json").is_file():
        return out
    with atomic_directory(out, overwrite=True) as staging:
        writer = DatasetWriter(staging, name=out.name, source_format="phantom")
        for case in _cohort(variant, n, seed):
            writer.add(case)
        writer.finish(n_folds=folds, seed=0)
    return out


def real_dataset(out: Path) -> Path:
    """3D-IRCADb-01 patient 17 as a one-case dataset (built at run time, never committed: its licence)."""
    from livervae.data.preprocess import preprocess
    from livervae.paths import real_case_dir

    if not (out / "datalist.json").is_file():
        preprocess("ircadb", real_case_dir(), out, n_folds=1, overwrite=True)
    return out


def _training_cases(dataset: Path, fold: int) -> int:
    datalist = json.loads((dataset / "datalist.json").read_text())
    return sum(1 for item in datalist["training"] if item.get("fold") != fold)


def train_stages(
    dataset: Path,
    out: Path,
    iterations: int,
    tumour_iterations: int,
    tumour_init: str = "",
    generated: bool = False,
) -> tuple[Path, Path | None, dict]:
    """Stage 1 (and stage 2) on `dataset`, fold 0 held out, for the epochs that give the budget: stage 1 from
    scratch, stage 2 from scratch or fine-tuned from `tumour_init` (a two-stage checkpoint's tumour network).
    `generated`: train on synthetic-pool cases generated while training (a window of the pool's training size),
    `dataset`'s fold 0 still validating."""
    from livervae.bundle import train
    from livervae.bundle_names import LIVER_BUNDLE, TUMOR_BUNDLE

    n_train = _training_cases(dataset, 0)
    per_epoch = max(1, math.ceil(n_train / BATCH))
    source: dict[str, Any] = {}
    if generated:
        source = {
            "synthetic_preset": "synthetic-pool",
            "synthetic_seed": GENERATED_SEED,
            "synthetic_cache_num": n_train,
        }
    timings: dict[str, float] = {}
    epochs = max(1, round(iterations / per_epoch))
    start = time.perf_counter()
    liver = train(
        LIVER_BUNDLE,
        dataset,
        epochs=epochs,
        output_dir=out / "liver",
        preset="cpu",
        overrides={
            "ckpt_dir": str(out / "liver" / "models"),
            "learning_rate": 1e-3,
            "num_samples": 2,
            "val_interval": max(1, epochs // 2),
            **source,
        },
    )
    timings["liver_training_s"] = round(time.perf_counter() - start, 1)
    timings["liver_epochs"], timings["liver_iterations"] = epochs, epochs * per_epoch
    tumour = None
    if tumour_iterations > 0:
        epochs = max(1, round(tumour_iterations / per_epoch))
        start = time.perf_counter()
        tumour = train(
            TUMOR_BUNDLE,
            dataset,
            epochs=epochs,
            output_dir=out / "tumour",
            preset="cpu",
            overrides={
                "ckpt_dir": str(out / "tumour" / "models"),
                "liver_model_path": str(liver),
                "pretrained_model": tumour_init,
                "learning_rate": 1e-3,
                "num_samples": 4,
                "crop_pos": 3,
                "patch_size": [48, 48, 48],
                "val_interval": max(1, epochs // 2),
                **source,
            },
        )
        timings["tumour_training_s"] = round(time.perf_counter() - start, 1)
        timings["tumour_epochs"], timings["tumour_iterations"] = epochs, epochs * per_epoch
    return liver, tumour, timings


def score(model: Path, bundle: str, dataset: Path, out: Path) -> dict[str, float]:
    """Evaluate one model on every case of a dataset (the bundle's own evaluation, with post-processing)."""
    from livervae.bundle import evaluate

    summary = evaluate(bundle, dataset, split="all", output_dir=out, overrides={"model_path": str(model)})["summary"]
    row = {"liver_dice": summary["liver_dice_mean"], "liver_volume_error": summary["liver_volume_error_mean"]}
    if "tumor_dice_mean" in summary:
        lesions = summary["lesions"]
        row.update(
            tumour_dice=summary["tumor_dice_mean"],
            lesions_found=lesions["detected"],
            lesions=lesions["reference_lesions"],
            false_positive_lesions=lesions["false_positives"],
        )
    return row


def no_liver_ml(model: Path, bundle: str) -> list[float]:
    """Liver mL the model predicts on the two real CTs with no liver in view."""
    from livervae.bundle import BundlePredictor
    from livervae.data.synthetic.label_maps import no_liver_ct_paths
    from livervae.io.nifti import load_nifti

    predictor = BundlePredictor(bundle, model_path=model, device="cpu")
    volumes = []
    for path in no_liver_ct_paths():
        label = predictor.predict(path)
        volumes.append(round(float(np.count_nonzero(label >= 1)) * load_nifti(path).voxel_volume_ml, 2))
    return volumes


def measure(variant: str, args: argparse.Namespace, tests: dict[str, Path]) -> dict[str, Any]:
    """Train one variant and score it on every test set."""
    from livervae.bundle_names import LIVER_BUNDLE, TUMOR_BUNDLE

    work = args.out / variant
    start = time.perf_counter()
    pool = write_dataset(variant, args.train_cases, TRAIN_SEED, work / "pool", args.folds)
    result: dict[str, Any] = {"variant": variant, "pool_s": round(time.perf_counter() - start, 1)}
    init = str(Path(args.tumour_init).resolve()) if args.tumour_init else ""
    liver, tumour, timings = train_stages(
        pool, work / "train", args.iterations, args.tumour_iterations, init, generated=variant == "synthetic_generated"
    )
    result.update(timings)
    model, bundle = (tumour, TUMOR_BUNDLE) if tumour else (liver, LIVER_BUNDLE)
    for name, dataset in tests.items():
        result[name] = score(model, bundle, dataset, work / "eval" / name)
    result["no_liver_ml"] = no_liver_ml(model, bundle)
    return result


def _cell(row: dict[str, Any], key: str, digits: int = 3) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key == "liver_volume_error":
        return f"{100 * value:+.1f} %"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(results: list[dict[str, Any]], tests: list[str]) -> str:
    """Markdown: one row per variant and test set."""
    lines = [
        "| training data | test data | liver Dice | liver volume error | tumour Dice | lesions found | FP lesions |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for name in tests:
            row = result[name]
            found = f"{row['lesions_found']} / {row['lesions']}" if "lesions" in row else "-"
            lines.append(
                f"| {result['variant']} | {name} | {_cell(row, 'liver_dice')} | {_cell(row, 'liver_volume_error')} | "
                f"{_cell(row, 'tumour_dice')} | {found} | {_cell(row, 'false_positive_lesions')} |"
            )
        lines.append(
            f"| {result['variant']} | real CTs without a liver (s0002, s0003) | liver predicted "
            f"{' / '.join(f'{v:g}' for v in result['no_liver_ml'])} mL | | | | |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["parametric", "synthetic"], choices=VARIANTS)
    parser.add_argument("--train-cases", type=int, default=24, help="training pool size per variant (default 24)")
    parser.add_argument("--folds", type=int, default=8, help="pool folds; fold 0 validates (default 8)")
    parser.add_argument("--iterations", type=int, default=120, help="stage-1 iterations (default 120)")
    parser.add_argument("--tumour-iterations", type=int, default=0, help="stage-2 iterations; 0: stage 1 only")
    parser.add_argument(
        "--tumour-init", default="", help="fine-tune stage 2 from this two-stage checkpoint (default: from scratch)"
    )
    parser.add_argument("--test-cases", type=int, default=4, help="unseen cases per generator (default 4)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/sim_to_real"), help="work folder (kept)")
    parser.add_argument("--json", type=Path, help="write every number here")
    args = parser.parse_args(argv)
    args.out = args.out.resolve()

    import torch

    torch.manual_seed(0)
    start = time.perf_counter()
    tests = {"real CT (3D-IRCADb-01 #17)": real_dataset(args.out / "tests" / "real")}
    tests["unseen parametric phantoms"] = write_dataset(
        "parametric", args.test_cases, TEST_SEED, args.out / "tests" / "parametric", 1
    )
    tests["unseen synthetic cases"] = write_dataset(
        "synthetic", args.test_cases, TEST_SEED, args.out / "tests" / "synthetic", 1
    )
    results = [measure(variant, args, tests) for variant in args.variants]
    rows = [{"variant": result["variant"], "test": name, **result[name]} for result in results for name in tests] + [
        {"variant": r["variant"], "test": "no-liver CTs", "liver_ml": max(r["no_liver_ml"])} for r in results
    ]
    report = {
        "machine": describe(),
        "rows": rows,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "results": results,
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(table(results, list(tests)))
    print(f"machine: {report['machine']}; {report['seconds']} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
