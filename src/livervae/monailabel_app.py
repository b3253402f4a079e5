"""Set up MONAI Label's `monaibundle` sample app with LiverVAE's bundles, and the studies folder it serves.

`make monailabel` calls this module three times: `studies` in the main environment (reading 3D-IRCADb needs
pydicom 3), then `app` and `serve` in the MONAI Label environment (`.venv-monailabel`, where the monailabel
wheel put its sample apps).

The app is a copy of monailabel's `monaibundle` sample app. Each LiverVAE bundle appears as
`<app>/model/<bundle>/`, made of links into the project's bundle (LICENSE, docs, metadata.json,
logging.conf, and `models/`, so a model retrained in MONAI Label is the one `livervae infer` uses) and of
generated configs: `inference.json`, `train.json` and `multi_gpu_train.json` are the project's files with the
settings recorded in `models/model.pt` (spacing, patch size, intensity window, filters) written into their
top-level keys. MONAI Label reads the configs as they are, whereas LiverVAE's CLI applies the recorded settings
on top of them; without this, a model trained with the CPU preset would not fit the default configs. The
configs are regenerated at every start, so they follow the model.

The studies folder holds the shipped real CT (3D-IRCADb-01 patient 17) as NIfTI and, so that training works
from the first request, its reference label map (0/1/2, built from the masks at run time) under
`labels/final/`. Both are derived from no-derivatives data and live only under the run folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from livervae.bundle_names import MONAI_LABEL_BUNDLES
from livervae.errors import InputError, LiverVAEError
from livervae.io.atomic import write_json_atomic
from livervae.io.checkpoint import apply_settings
from livervae.paths import real_case_dir, repo_root

logger = logging.getLogger(__name__)

BUNDLE_NAMES = MONAI_LABEL_BUNDLES
SAMPLE_APP = "monaibundle"
# Configs MONAI Label parses: settings from the checkpoint go into these; other files are linked unchanged.
GENERATED_CONFIGS = ("inference.json", "train.json", "multi_gpu_train.json")
REAL_STUDY = "3dircadb1_17"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def find_sample_app(prefix: str | os.PathLike[str] | None = None) -> Path:
    """The `monaibundle` sample app that the monailabel wheel installed under `prefix` (default: this Python's).

    Raises:
        InputError: monailabel is not installed in that environment.
    """
    root = Path(prefix or sys.prefix)
    candidates = [root / "monailabel" / "sample-apps" / SAMPLE_APP]
    try:
        import monailabel

        candidates.append(Path(monailabel.__file__).parent / "sample-apps" / SAMPLE_APP)
    except ImportError:
        pass
    for candidate in candidates:
        if (candidate / "main.py").is_file():
            return candidate
    raise InputError(candidates[0], "MONAI Label's monaibundle sample app not found (run `make monailabel`)")


def recorded_settings(model: Path) -> dict:
    """The settings LiverVAE recorded next to the weights in `model` (see `SettingsRecord`)."""
    from livervae.io.checkpoint import read_checkpoint

    missing = "no trained model; `make monailabel` trains one first, or run `make train`"
    return read_checkpoint(model, missing=missing)[1]


def _link(target: Path, link: Path) -> None:
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    link.symlink_to(target.resolve(), target_is_directory=target.is_dir())


def prepare_bundle(source: Path, destination: Path, copy_models: bool = False) -> dict:
    """Lay out one bundle for MONAI Label at `destination` (see the module docstring); return its settings.

    Args:
        source: the project's bundle folder.
        destination: `<app>/model/<bundle name>`.
        copy_models: copy `models/` instead of linking it, so training in MONAI Label leaves the project's
            model untouched (tests).
    """
    settings = recorded_settings(source / "models" / "model.pt")
    (destination / "configs").mkdir(parents=True, exist_ok=True)
    for name in ("LICENSE", "docs"):
        if (source / name).exists():
            _link(source / name, destination / name)
    models = destination / "models"
    if copy_models:
        if models.is_symlink():
            models.unlink()
        models.mkdir(exist_ok=True)
        for path in (source / "models").glob("*.pt"):
            shutil.copy2(path, models / path.name)
    else:
        _link(source / "models", models)
    for path in sorted((source / "configs").iterdir()):
        target = destination / "configs" / path.name
        if path.name in GENERATED_CONFIGS:
            if target.is_symlink():
                target.unlink()
            config = json.loads(path.read_text(encoding="utf-8"))
            # MONAI Label sends repeated training requests into the same run folder: each starts afresh.
            write_json_atomic(target, apply_settings(dict(config), {**settings, "restart_finished_runs": True}))
        else:
            _link(path, target)
    return settings


def prepare_app(
    app_dir: str | os.PathLike[str],
    bundles: Sequence[str] = BUNDLE_NAMES,
    sample_app: str | os.PathLike[str] | None = None,
    copy_models: bool = False,
) -> Path:
    """Copy the monaibundle sample app to `app_dir` (refreshing it) and lay out `bundles` under `model/`."""
    app = Path(app_dir)
    sample = Path(sample_app) if sample_app else find_sample_app()
    shutil.copytree(sample, app, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    for name in bundles:
        settings = prepare_bundle(repo_root() / "bundles" / name, app / "model" / name, copy_models)
        logger.info("%s: configs follow the trained model's settings %s", name, json.dumps(settings))
    return app


def prepare_studies(studies_dir: str | os.PathLike[str], with_label: bool = True) -> Path:
    """Write the shipped real CT (and its reference label map) as a MONAI Label studies folder; return it.

    Existing files are kept, so labels saved from a MONAI Label client survive a restart.
    """
    from livervae.data.formats.ircadb import read_patient
    from livervae.io.atomic import atomic_path
    from livervae.io.nifti import save_nifti

    studies = Path(studies_dir)
    source = real_case_dir()
    if not (source / "nifti" / "ct.nii.gz").is_file():
        raise InputError(source, "shipped real CT not found; set LIVERVAE_DATA_DIR to the shared data folder")
    studies.mkdir(parents=True, exist_ok=True)
    image = studies / f"{REAL_STUDY}.nii.gz"
    if not image.exists():
        with atomic_path(image) as tmp:
            shutil.copyfile(source / "nifti" / "ct.nii.gz", tmp)  # the lossless NIfTI of the DICOM series
    label = studies / "labels" / "final" / f"{REAL_STUDY}.nii.gz"
    if with_label and not label.exists():
        case = read_patient(source)
        save_nifti(case.label, label)
    return studies


def server_command(
    app_dir: str | os.PathLike[str],
    studies_dir: str | os.PathLike[str],
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    bundles: Sequence[str] = BUNDLE_NAMES,
    prefix: str | os.PathLike[str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that start MONAI Label offline on the app, from the environment at
    `prefix` (default: this Python's).

    Offline means: the zoo source is not the default `monaihosting`, so the bundles under `model/` are used as
    they are and nothing is downloaded; SAM2 is off (it would fetch weights); models load on first use.
    """
    bin_dir = Path(prefix or sys.prefix) / "bin"
    command = [
        str(bin_dir / "monailabel"),
        "start_server",
        "--app",
        str(Path(app_dir).resolve()),
        "--studies",
        str(Path(studies_dir).resolve()),
        "--host",
        host,
        "--port",
        str(port),
        "--conf",
        "models",
        ",".join(bundles),
        "--conf",
        "zoo_source",
        "github",
        "--conf",
        "sam2",
        "false",
        "--conf",
        "preload",
        "false",
    ]
    environment = dict(os.environ)
    # The monailabel launcher runs the `python` found on PATH.
    environment["PATH"] = f"{bin_dir}{os.pathsep}{environment.get('PATH', '')}"
    environment["BUNDLE_DOWNLOAD_SRC"] = "github"
    environment["MONAI_ZOO_SOURCE"] = "github"
    return command, environment


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m livervae.monailabel_app {app,studies,serve} ...` (used by `make monailabel`)."""
    parser = argparse.ArgumentParser(prog="python -m livervae.monailabel_app", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    app = commands.add_parser("app", help="copy the monaibundle sample app and lay out LiverVAE's bundles in it")
    app.add_argument("--app", type=Path, required=True, help="app folder to create or refresh")
    app.add_argument("--bundles", default=",".join(BUNDLE_NAMES), help="comma-separated bundle names")
    app.add_argument("--copy-models", action="store_true", help="copy models/ instead of linking it")
    studies = commands.add_parser("studies", help="write the shipped real CT (and its label) as a studies folder")
    studies.add_argument("--studies", type=Path, required=True, help="studies folder to create")
    studies.add_argument("--no-label", action="store_true", help="do not add the reference label map")
    serve = commands.add_parser("serve", help="start MONAI Label offline on the app and studies folder")
    serve.add_argument("--app", type=Path, required=True, help="app folder made by `app`")
    serve.add_argument("--studies", type=Path, required=True, help="studies folder")
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}, this machine)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    serve.add_argument("--bundles", default=",".join(BUNDLE_NAMES), help="comma-separated bundle names")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    try:
        if args.command == "serve":
            bundles = [b.strip() for b in args.bundles.split(",") if b.strip()]
            command, environment = server_command(args.app, args.studies, args.host, args.port, bundles)
            print(f"MONAI Label on http://{args.host}:{args.port}, app {args.app}, studies {args.studies}", flush=True)
            os.execve(command[0], command, environment)
        if args.command == "app":
            print(
                prepare_app(args.app, [b.strip() for b in args.bundles.split(",") if b.strip()], None, args.copy_models)
            )
        else:
            print(prepare_studies(args.studies, with_label=not args.no_label))
    except LiverVAEError as exc:
        print(f"livervae: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
