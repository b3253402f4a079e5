"""The `livervae` command: preprocess, phantom and demo (train, eval and infer arrive with the bundles)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from livervae import __version__
from livervae.errors import LiverVAEError

logger = logging.getLogger("livervae")


def _add_dataset_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output dataset folder")
    parser.add_argument("--folds", type=int, default=5, help="number of patient-disjoint folds (default 5)")
    parser.add_argument("--fold-seed", type=int, default=0, help="seed of the fold assignment (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder when done")


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
    prep.add_argument("--preset", choices=("default", "small"), default="default", help="phantom: grid preset")

    phantom = commands.add_parser(
        "phantom",
        help="generate the synthetic phantom cohort as a normalised dataset",
        description=("Synthetic abdominal CT with exact liver/tumour labels and an HCC-TACE-Seg-style clinical sheet."),
    )
    phantom.add_argument("--n", type=int, default=8, help="number of cases (default 8)")
    phantom.add_argument("--seed", type=int, default=0, help="cohort seed (default 0)")
    phantom.add_argument(
        "--preset", choices=("default", "small"), default="default", help="grid: default (~1.5 mm) or small (~3 mm)"
    )
    _add_dataset_options(phantom)

    demo = commands.add_parser("demo", help="run the main job on the shipped real CT and a phantom cohort")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    demo.add_argument("--phantoms", type=int, default=6, help="phantom cases to generate (default 6)")
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command in ("preprocess", "phantom"):
        from livervae.data.formats import SourceOptions
        from livervae.data.preprocess import preprocess
        from livervae.report import print_dataset_summary

        fmt = "phantom" if args.command == "phantom" else args.format
        options = SourceOptions(phantom_n=args.n, phantom_seed=args.seed, phantom_preset=args.preset)
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
    if args.command == "demo":
        from livervae.demo import run_demo

        run_demo(args.out, n_phantoms=args.phantoms)
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
    try:
        return _run(args)
    except LiverVAEError as exc:
        print(f"livervae: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("livervae: interrupted; no partial output was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
