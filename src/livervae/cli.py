"""The `livervae` command: preprocess, phantom, train, eval, infer (label map or DICOM-SEG), cv, ablate and demo."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from livervae import __version__
from livervae.bundle_names import PATCH_VAE_BUNDLE, TUMOR_BUNDLE
from livervae.errors import InputError, livervae_cause

# `livervae.data.formats.phantom.PRESETS`, named here so the parser imports no generator.
PHANTOM_PRESETS = ("default", "small", "synthetic", "synthetic-pool", "synthetic-train")

logger = logging.getLogger("livervae")


def _add_dataset_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output dataset folder")
    parser.add_argument("--folds", type=int, default=5, help="number of patient-disjoint folds (default 5)")
    parser.add_argument("--fold-seed", type=int, default=0, help="seed of the fold assignment (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder when done")


def _add_bundle_options(parser: argparse.ArgumentParser, preset: bool = True) -> None:
    if preset:
        parser.add_argument(
            "--preset", choices=("default", "cpu"), default="default", help="settings: default (GPU) or cpu"
        )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a bundle config value (JSON value), e.g. --set learning_rate=1e-4; repeatable",
    )
    parser.add_argument(
        "--allow-external-bundle", action="store_true", help="allow a bundle folder outside LiverVAE (runs its code)"
    )


def _overrides(pairs: list[str]) -> dict:
    values = {}
    for pair in pairs:
        if "=" not in pair:
            raise InputError(None, f"--set expects KEY=VALUE, got {pair!r}")
        key, raw = pair.split("=", 1)
        try:
            values[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[key.strip()] = raw
    return values


def _data(paths: list[Path]) -> Path | list[Path]:
    return paths[0] if len(paths) == 1 else list(paths)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the `livervae` command."""
    from livervae.data.formats import FORMAT_NAMES

    parser = argparse.ArgumentParser(prog="livervae", description="Liver and liver-tumour CT segmentation.")
    parser.add_argument("--version", action="version", version=f"livervae {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="more log output")
    commands = parser.add_subparsers(dest="command", required=True)

    prep = commands.add_parser(
        "preprocess",
        help="convert a dataset into LiverVAE's normalised layout",
        description="Write <out>/images, <out>/labels (0 background, 1 liver, 2 tumour), datalist.json with "
        "patient-disjoint folds, summary.json and, with clinical data, clinical.csv.",
    )
    prep.add_argument("--format", required=True, choices=FORMAT_NAMES, help="source layout")
    prep.add_argument("--source", type=Path, help="source folder (not needed for phantom)")
    _add_dataset_options(prep)
    prep.add_argument("--series-uid", help="SeriesInstanceUID to read when a folder holds several series")
    prep.add_argument("--case-id", help="case id for single-case formats (default: the folder name)")
    prep.add_argument("--clinical", type=Path, help="clinical sheet (xlsx/csv) keyed by TCIA_ID (hcc-tace-seg)")
    prep.add_argument("--segment-map", help="DICOM-SEG segment roles: JSON file or 'Label=role,SCT:code=role'")
    prep.add_argument(
        "--vessels", choices=("background", "liver"), default="background", help="what vessel segments become"
    )
    prep.add_argument("--n", type=int, default=8, help="phantom: number of cases (default 8)")
    prep.add_argument("--seed", type=int, default=0, help="phantom: cohort seed (default 0)")
    prep.add_argument("--preset", choices=PHANTOM_PRESETS, default="default", help="phantom: generator and grid preset")

    phantom = commands.add_parser(
        "phantom",
        help="generate the synthetic phantom cohort as a normalised dataset",
        description=("Synthetic abdominal CT with exact liver/tumour labels and an HCC-TACE-Seg-style clinical sheet."),
    )
    phantom.add_argument("--n", type=int, default=8, help="number of cases (default 8)")
    phantom.add_argument("--seed", type=int, default=0, help="cohort seed (default 0)")
    phantom.add_argument(
        "--preset",
        choices=PHANTOM_PRESETS,
        default="default",
        help="parametric phantom on a default (~1.5 mm) or small (~3 mm) grid, or synthetic CT from real label maps "
        "(synthetic: 1.5 mm; synthetic-pool: 2 mm, 2.5 mm slices; synthetic-train: synthetic-pool with half the "
        "livers from the BodyParts3D meshes and 8 %% no-liver cases, for training the liver model)",
    )
    phantom.add_argument(
        "--blurred-fraction",
        type=float,
        default=None,
        help="probability that a lesion has a blurred margin (default: the preset's, 0.45)",
    )
    _add_dataset_options(phantom)

    bundle_names = (
        "liver_ct_segmentation (stage 1), liver_tumor_ct_segmentation (stage 2, the whole chain), "
        "liver_tumor_patch_vae_classification (patch VAE) or liver_tumor_unet_segmentation (its U-Net baselines)"
    )
    data_help = (
        "dataset folder written by `livervae preprocess`; the patch bundles take several, as one "
        "leave-one-patient-out cohort"
    )
    train = commands.add_parser("train", help="train a bundle on a normalised dataset")
    train.add_argument("--bundle", required=True, help=bundle_names)
    train.add_argument("--data", type=Path, nargs="+", required=True, help=data_help)
    train.add_argument("--fold", type=int, default=0, help="held-out fold; patch bundles: held-out patient (default 0)")
    train.add_argument("--epochs", type=int, help="max epochs (default: the bundle's)")
    train.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    train.add_argument("--output", type=Path, help="run folder (default runs/<bundle>/fold<k>)")
    _add_bundle_options(train)

    evaluate = commands.add_parser("eval", help="evaluate a trained bundle: metrics.csv, summary.json, overlays")
    evaluate.add_argument("--bundle", default=TUMOR_BUNDLE, help=bundle_names)
    evaluate.add_argument("--data", type=Path, nargs="+", required=True, help=data_help)
    evaluate.add_argument("--fold", type=int, default=0, help="fold to evaluate (default 0)")
    evaluate.add_argument("--split", choices=("val", "all", "train"), default="val", help="which cases (default val)")
    evaluate.add_argument("--output", type=Path, help="report folder (default runs/<bundle>/eval_fold<k>_<split>)")
    evaluate.add_argument("--device", help="cpu, cuda, ...")
    evaluate.add_argument("--record", action="store_true", help="write the metrics into the bundle's metadata.json")
    evaluate.add_argument(
        "--record-as", metavar="LABEL", help="--record under this eval_metrics entry (default: the dataset names)"
    )
    _add_bundle_options(evaluate, preset=False)

    rechain = commands.add_parser(
        "rechain",
        help="put another liver model into a two-stage checkpoint (tumour stage untouched)",
        description="Write a copy of a two-stage (liver_tumor_ct_segmentation) checkpoint whose stage 1 is the "
        "given liver model, after checking that it was trained with the chain's stage-1 settings. The tumour stage "
        "learnt on the old liver model's crops: evaluate the result before shipping it.",
    )
    rechain.add_argument("--two-stage", type=Path, required=True, help="the two-stage model.pt to start from")
    rechain.add_argument("--liver", type=Path, required=True, help="the liver model.pt to put in")
    rechain.add_argument("--out", type=Path, required=True, help="where the new two-stage model.pt goes")
    rechain.add_argument(
        "--record",
        action="store_true",
        help="--out is the two-stage bundle's models/model.pt: record the new stage 1 in its metadata.json "
        "(training.stage_1, the model's SHA-256)",
    )

    record = commands.add_parser(
        "record-training",
        help="describe a finished training run in the bundle's metadata.json (data, epochs, best epoch, commit)",
        description="Read the run folder's TensorBoard scalars and last resume checkpoint and the dataset's "
        "datalist, and write them, with the command, the commit and the SHA-256 of the bundle's model.pt, under "
        "`training` in the bundle's configs/metadata.json.",
    )
    record.add_argument("--bundle", required=True, help=bundle_names)
    record.add_argument("--run", type=Path, required=True, help="the training run folder (--output of train)")
    record.add_argument("--data", type=Path, required=True, help="the dataset it trained on")
    record.add_argument("--fold", type=int, default=0, help="its validation fold (default 0)")
    record.add_argument("--command-line", required=True, help="the command that ran the training")
    record.add_argument("--commit", help="the commit that trained (default: the checked-out one)")
    record.add_argument("--model", type=Path, help="the weights it produced (default: the bundle's models/model.pt)")
    record.add_argument("--checkpoints", type=Path, help="its resume checkpoints (default: <run>/checkpoints)")

    infer = commands.add_parser(
        "infer",
        help="segment one CT (NIfTI file or DICOM folder) into a label map (NIfTI or DICOM-SEG), "
        "or a whole folder / DICOM tree / manifest.csv into an output folder (batch mode)",
    )
    infer.add_argument(
        "-i",
        "--input",
        type=Path,
        required=True,
        help="NIfTI file or DICOM series folder; batch: a folder of NIfTI files and DICOM series, or a manifest .csv",
    )
    infer.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="label map to write: .nii.gz (any input) or .dcm (DICOM-SEG referencing a DICOM series input); "
        "a folder (no such suffix) runs batch mode",
    )
    infer.add_argument("--bundle", default=TUMOR_BUNDLE, help=bundle_names)
    infer.add_argument("--series-uid", help="SeriesInstanceUID when the DICOM folder holds several series")
    infer.add_argument(
        "--liver-mask", type=Path, help="patch bundles: liver mask or 0/1/2 label map on the CT's grid (NIfTI)"
    )
    infer.add_argument("--device", help="cpu, cuda, ...")
    infer.add_argument("--model", type=Path, help="weights to use (default: the bundle's models/model.pt)")
    infer.add_argument("--no-overlay", action="store_true", help="do not write the overlay PNG")
    infer.add_argument(
        "--uncertainty",
        nargs="?",
        const=BESIDE_OUTPUT,
        metavar="FILE",
        help="also write P(liver), P(tumour) and the voxel uncertainty on the input grid to FILE (.nii.gz, 4D; "
        "without FILE: <output name>_uncertainty.nii.gz beside the output, and in batch mode beside each case's) "
        "and report the case quality score and review flag (two-stage bundle)",
    )
    batch = infer.add_argument_group("batch mode (output is a folder)")
    batch.add_argument("--workers", type=int, default=1, help="1: this process; N: a local Dask cluster of N processes")
    batch.add_argument("--scheduler", help="address of a running Dask scheduler (tcp://host:8786) to submit to")
    batch.add_argument("--threads", type=int, help="torch threads per worker (default: cores / workers)")
    batch.add_argument("--all-series", action="store_true", help="segment every CT series of a study, not one")
    batch.add_argument(
        "--output-format",
        choices=("auto", "nifti", "dicom-seg"),
        default="auto",
        help="auto: DICOM-SEG for DICOM series, NIfTI for NIfTI files (default)",
    )
    batch.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_bundle_options(infer, preset=False)

    ablate = commands.add_parser(
        "ablate",
        help="evaluate the tumour bundle with and without active-contour refinement",
        description="Evaluate liver_tumor_ct_segmentation twice per dataset (active_contour off, then on) and "
        "write ablation.md and ablation.json side by side.",
    )
    ablate.add_argument(
        "--data", action="append", required=True, metavar="[NAME=]PATH", help="a normalised dataset; repeatable"
    )
    ablate.add_argument("--out", type=Path, required=True, help="output folder")
    ablate.add_argument("--model", type=Path, help="two-stage checkpoint (default: the bundle's models/model.pt)")
    ablate.add_argument("--split", choices=("all", "val"), default="all", help="cases of each dataset (default all)")
    ablate.add_argument("--fold", type=int, default=0, help="fold for --split val (default 0)")
    ablate.add_argument("--device", help="cpu, cuda, ...")
    ablate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="bundle config override")

    cv = commands.add_parser(
        "cv",
        help="leave-one-patient-out cross-validation of a patch bundle (train and evaluate every fold)",
        description="Fold k trains on every patient but the k-th (sorted by id) and scores the k-th; writes "
        "<output>/fold<k>/{train,models,eval} and <output>/summary.json with the AUC per fold and pooled.",
    )
    cv.add_argument("--bundle", default=PATCH_VAE_BUNDLE, help="a patch bundle")
    cv.add_argument("--data", type=Path, nargs="+", required=True, help=data_help)
    cv.add_argument("--folds", type=int, nargs="+", help="folds to run (default: one per patient)")
    cv.add_argument("--epochs", type=int, help="max classifier/segmentation epochs (default: the bundle's)")
    cv.add_argument("--device", help="cpu, cuda, ...")
    cv.add_argument("--output", type=Path, help="run folder (default runs/<bundle>/cv)")
    cv.add_argument("--record", action="store_true", help="write the pooled AUC into the bundle's metadata.json")
    _add_bundle_options(cv)

    demo = commands.add_parser("demo", help="run the main job on the shipped real CT and a phantom cohort")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    demo.add_argument("--phantoms", type=int, default=8, help="phantom cases to generate (default 8)")
    mode = demo.add_mutually_exclusive_group()
    mode.add_argument(
        "--train",
        action="store_true",
        help="train both stages briefly on the demo phantoms and score those models instead of the shipped weights",
    )
    mode.add_argument("--no-train", action="store_true", help="only prepare the data (no inference)")
    demo.add_argument("--liver-epochs", type=int, default=10, help="--train: stage-1 epochs (default 10)")
    demo.add_argument("--tumor-epochs", type=int, default=8, help="--train: stage-2 epochs (default 8)")
    return parser


# `--uncertainty` given without a file name: the maps go beside the output (each case's, in batch mode).
BESIDE_OUTPUT = "<beside the output>"


def is_batch(source: Path, output: Path) -> bool:
    """Batch mode: a manifest CSV in, or a folder in and a folder out (an existing folder, or a name without a
    suffix). Anything else is one case, whose output name `check_output_name` judges."""
    if source.suffix.lower() == ".csv":
        return True
    return source.is_dir() and (output.is_dir() or not output.suffix)


def _run_batch(args: argparse.Namespace) -> int:
    """`livervae infer` over a folder, DICOM tree or manifest; exit 1 when any case failed."""
    from livervae.batch import PredictorSettings, format_batch_result, run_batch
    from livervae.bundle import PATCH_BUNDLES

    if Path(args.bundle).name in PATCH_BUNDLES:
        raise InputError(None, "batch mode runs the segmentation bundles; the patch bundles take one CT and its mask")
    if args.series_uid:
        raise InputError(None, "--series-uid selects a series of one folder; in batch mode use a manifest CSV column")
    if args.uncertainty not in (None, BESIDE_OUTPUT):
        raise InputError(
            args.uncertainty, "in batch mode give --uncertainty without a file name: each case's maps go beside it"
        )
    settings = PredictorSettings(
        bundle=args.bundle,
        model_path=str(args.model) if args.model else None,
        device=args.device,
        torch_threads=args.threads,
        overrides=tuple(_overrides(args.set).items()),
        allow_external=args.allow_external_bundle,
        overlay=not args.no_overlay,
        uncertainty=args.uncertainty is not None,
    )
    try:
        result = run_batch(
            args.input,
            args.output,
            settings,
            workers=args.workers,
            scheduler=args.scheduler,
            all_series=args.all_series,
            output_format=args.output_format,
            progress=not args.no_progress,
        )
    except KeyboardInterrupt:
        print(
            f"livervae: interrupted; finished cases are in {args.output / 'manifest.csv'}: run the same command "
            "again to continue",
            file=sys.stderr,
        )
        return 130
    print(format_batch_result(result))
    return 0 if result.ok else 1


def _run(args: argparse.Namespace) -> int:
    if args.command in ("preprocess", "phantom"):
        from livervae.data.formats import SourceOptions
        from livervae.data.preprocess import preprocess
        from livervae.report import print_dataset_summary

        fmt = "phantom" if args.command == "phantom" else args.format
        options = SourceOptions(
            phantom_n=args.n,
            phantom_seed=args.seed,
            phantom_preset=args.preset,
            phantom_blurred_fraction=getattr(args, "blurred_fraction", None),
        )
        if args.command == "preprocess":
            options.series_uid = args.series_uid
            options.case_id = args.case_id
            options.clinical_sheet = args.clinical
            options.segment_map = args.segment_map
            options.vessels = args.vessels
        source = getattr(args, "source", None)
        summary = preprocess(fmt, source, args.out, options, args.folds, args.fold_seed, args.overwrite)
        print_dataset_summary(summary, args.out)
        return 0
    if args.command == "train":
        from livervae.bundle import train

        model = train(
            args.bundle,
            _data(args.data),
            args.fold,
            args.epochs,
            args.device,
            args.output,
            args.preset,
            _overrides(args.set),
            args.allow_external_bundle,
        )
        print(f"best model: {model}")
        return 0
    if args.command == "eval":
        from livervae.bundle import evaluate, record_eval_metrics

        result = evaluate(
            args.bundle,
            _data(args.data),
            args.fold,
            args.split,
            args.output,
            args.device,
            _overrides(args.set),
            args.allow_external_bundle,
        )
        from livervae.bundle import PATCH_BUNDLES

        print(json.dumps(result["summary"], indent=2, default=str))
        patch_bundle = Path(args.bundle).name in PATCH_BUNDLES
        print(f"report: {result['output_dir']}{'' if patch_bundle else '/metrics'}")
        if args.record:
            model = _overrides(args.set).get("model_path")
            path = record_eval_metrics(
                args.bundle, result["summary"], _data(args.data), args.fold, args.split, args.record_as, model
            )
            print(f"recorded in {path}")
        return 0
    if args.command == "rechain":
        from livervae.bundle import TUMOR_BUNDLE, bundle_root, file_sha256
        from livervae.io.checkpoint import replace_stage_one
        from livervae.training_record import record_stage_one, stage_two_record_sha256

        started_from = file_sha256(args.two_stage) if args.record and args.two_stage.is_file() else ""
        if args.record:  # checked before writing, so a refused record leaves the bundle's model as it was
            bundle_model = bundle_root(TUMOR_BUNDLE) / "models" / "model.pt"
            if args.out.resolve() != bundle_model.resolve():
                raise InputError(args.out, f"--record needs --out {bundle_model}")
            if started_from != stage_two_record_sha256(TUMOR_BUNDLE):
                raise InputError(args.two_stage, "is not the model the bundle's training record describes")
        replace_stage_one(args.two_stage, args.liver, args.out)
        print(f"wrote {args.out}: stage 1 from {args.liver}, stage 2 from {args.two_stage}")
        if args.record:
            command = f"livervae rechain --two-stage {args.two_stage} --liver {args.liver} --out {args.out} --record"
            print(f"recorded in {record_stage_one(TUMOR_BUNDLE, started_from, args.liver, command)}")
        return 0
    if args.command == "record-training":
        from livervae.bundle import PATCH_BUNDLES
        from livervae.paths import repo_root
        from livervae.training_record import git_commit, record_training, training_record

        commit = git_commit(repo_root(), args.commit or "HEAD")
        if args.commit and not commit:
            raise InputError(None, f"--commit {args.commit!r} is not a commit of {repo_root()}")
        lopo = Path(args.bundle).name in PATCH_BUNDLES
        summary = training_record(
            args.run, args.data, args.fold, args.command_line, commit, None, args.checkpoints, lopo
        )
        print(json.dumps(summary, indent=2))
        print(f"recorded in {record_training(args.bundle, summary, args.model)}")
        return 0
    if args.command == "infer" and is_batch(args.input, args.output):
        return _run_batch(args)
    if args.command == "infer":
        from livervae.bundle import PATCH_BUNDLES
        from livervae.infer import format_report, infer, uncertainty_path_for

        if Path(args.bundle).name in PATCH_BUNDLES:
            from livervae.patch_infer import infer_patches

            if args.uncertainty:
                raise InputError(args.uncertainty, "--uncertainty needs the two-stage bundle; patch bundles write maps")

            result = infer_patches(
                args.input,
                args.liver_mask,
                args.output,
                bundle=args.bundle,
                series_uid=args.series_uid,
                device=args.device,
                overrides=_overrides(args.set),
            )
            outputs = ", ".join(result["outputs"])
            print(f"{result['patches']} liver patches scored in {result['seconds']:.1f} s -> {outputs}")
            return 0

        summary = infer(
            args.input,
            args.output,
            bundle=args.bundle,
            series_uid=args.series_uid,
            device=args.device,
            overlay=not args.no_overlay,
            overrides=_overrides(args.set),
            model_path=args.model,
            allow_external=args.allow_external_bundle,
            uncertainty_path=(
                uncertainty_path_for(args.output) if args.uncertainty == BESIDE_OUTPUT else args.uncertainty
            ),
        )
        print(format_report(summary))
        return 0
    if args.command == "ablate":
        from livervae.ablation import run_ablation

        datasets = {}
        for item in args.data:
            name, _, path = item.rpartition("=")
            datasets[name or Path(path).name] = Path(path)
        result = run_ablation(datasets, args.out, args.model, args.split, args.fold, args.device, _overrides(args.set))
        print(result["markdown"], end="")
        print(f"written: {args.out / 'ablation.md'}, {args.out / 'ablation.json'}")
        return 0
    if args.command == "cv":
        from livervae.bundle import record_eval_metrics
        from livervae.crossval import format_cv, run_cv
        from livervae.paths import repo_root

        out = args.output or repo_root() / "runs" / Path(args.bundle).name / "cv"
        summary = run_cv(
            args.bundle, _data(args.data), out, args.folds, args.epochs, args.device, args.preset, _overrides(args.set)
        )
        print(format_cv(summary))
        print(f"report: {out}/summary.json")
        if args.record:
            folds = ",".join(summary["folds"])
            print(f"recorded in {record_eval_metrics(args.bundle, summary, _data(args.data), folds, 'lopo')}")
        return 0
    if args.command == "demo":
        from livervae.demo import run_demo

        mode = "train" if args.train else "prepare" if args.no_train else "shipped"
        run_demo(args.out, args.phantoms, mode, args.liver_epochs, args.tumor_epochs)
        return 0
    raise AssertionError(f"unhandled command {args.command}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `livervae` console script; returns the process exit status.

    Bad input and unwritable outputs end with one line on stderr and exit status 2, no traceback.
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    # highdicom logs every module it copies at INFO (SOP Instance UIDs, one line each): keep that for --verbose.
    logging.getLogger("highdicom").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        return _run(args)
    except Exception as exc:
        # MONAI's transforms and engines wrap errors raised inside a pipeline (e.g. an empty liver met while
        # cropping) in RuntimeError; the user still gets the one sentence naming the file.
        cause = livervae_cause(exc)
        if cause is None:
            raise
        print(f"livervae: error: {cause}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("livervae: interrupted; no partial output was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
