"""Run LiverVAE's MONAI bundles from Python and the CLI: train, evaluate, and predict one CT.

Bundle configs execute code (`$` expressions, `_target_`), so the CLI runs only the bundles shipped in this
repository unless the caller passes `allow_external=True`. Settings that must agree between training and
inference (spacing, window, patch size, filters) are recorded in `models/model.pt` at training time and read
back here, so inference and evaluation always run a model at the settings it was trained with.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from monai.bundle import ConfigParser, ConfigWorkflow

# The bundle names live in bundle_names (no MONAI import); re-exported here for the bundle API.
from livervae.bundle_names import (  # noqa: F401
    BUNDLES,
    LIVER_BUNDLE,
    PATCH_BUNDLES,
    PATCH_VAE_BUNDLE,
    TUMOR_BUNDLE,
    UNET_BUNDLE,
)
from livervae.errors import InputError
from livervae.io.checkpoint import apply_settings, load_model_weights, read_checkpoint
from livervae.io.volume import Volume
from livervae.labels import current_key
from livervae.paths import repo_root

if TYPE_CHECKING:
    from livervae.uncertainty import CaseQuality

logger = logging.getLogger(__name__)


def bundle_root(name: str, allow_external: bool = False) -> Path:
    """The folder of bundle `name`: one of LiverVAE's own, or (with `allow_external`) any bundle folder path."""
    if name in BUNDLES:
        return repo_root() / "bundles" / name
    path = Path(name)
    if not allow_external:
        raise InputError(
            name,
            f"not a LiverVAE bundle ({', '.join(BUNDLES)}); bundle configs run code, so other bundles "
            "need --allow-external-bundle",
        )
    if not (path / "configs" / "inference.json").is_file():
        raise InputError(path, "not a MONAI bundle folder (no configs/inference.json)")
    return path.resolve()


def preset_configs(name: str, preset: str, allow_external: bool = False) -> list[str]:
    """The overlay config files of `preset` for bundle `name`: none for "default", else `configs/<preset>.json`.

    An overlay (e.g. `cpu.json`: coarser grids, smaller networks) is merged after the bundle's own configs, so
    `python -m monai.bundle run --config_file "['configs/train.json','configs/cpu.json']"` gets the same run.

    Raises:
        InputError: the bundle has no such overlay.
    """
    if preset == "default":
        return []
    overlay = bundle_root(name, allow_external) / "configs" / f"{preset}.json"
    if not overlay.is_file():
        raise InputError(overlay, f"no preset {preset!r} for this bundle (no configs/{preset}.json)")
    return [overlay.name]


def preset_overrides(name: str, preset: str) -> dict[str, Any]:
    """The values the overlay of `preset` sets, as config overrides (for code that builds one config part)."""
    import json

    root = bundle_root(name)
    return {
        key: value
        for file in preset_configs(name, preset)
        for key, value in json.loads((root / "configs" / file).read_text(encoding="utf-8")).items()
    }


def recorded_settings(model_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The training settings stored in a LiverVAE `model.pt` (empty for checkpoints without a record)."""
    return read_checkpoint(model_path, missing="no trained model; run `make train` for this bundle first")[1]


def bundle_version(root: Path) -> str:
    """The `version` in a bundle's configs/metadata.json (empty when it has none)."""
    import json

    try:
        return str(json.loads((root / "configs" / "metadata.json").read_text(encoding="utf-8")).get("version", ""))
    except (OSError, ValueError):
        return ""


def dataset_setting(name: str, dataset_dir: Any) -> str | list[str]:
    """The `dataset_dir` config value: one resolved folder, or (patch bundles only) a list of them.

    Raises:
        InputError: a folder without datalist.json, or several folders for a bundle that takes one.
    """
    from livervae.data.cohort import dataset_dirs

    folders = dataset_dirs(dataset_dir)
    for folder in folders:
        if not (folder / "datalist.json").is_file():
            raise InputError(folder, "no datalist.json (prepare the dataset with `livervae preprocess`)")
    if len(folders) > 1 and Path(name).name not in PATCH_BUNDLES:
        raise InputError(None, f"{Path(name).name} trains on one dataset folder, got {len(folders)}")
    resolved = [str(f.resolve()) for f in folders]
    return resolved if len(resolved) > 1 else resolved[0]


def _config_files(root: Path, names: list[str]) -> list[str]:
    return [str(root / "configs" / name) for name in names]


def _require_properties(workflow: ConfigWorkflow, root: Path, configs: list[str]) -> None:
    """Refuse a bundle whose configs lack a key MONAI's workflow contract requires, before anything runs."""
    from monai.utils import BundleProperty, BundlePropertyConfig

    missing = [
        str(prop[BundlePropertyConfig.ID]).replace("::", "#")
        for prop in workflow.properties.values()
        if prop.get(BundleProperty.REQUIRED) and prop[BundlePropertyConfig.ID] not in workflow.parser
    ]
    if missing:
        raise InputError(
            root / "configs" / configs[-1], f"bundle config lacks required key(s) {', '.join(sorted(missing))}"
        )


def run_workflow(
    root: Path,
    configs: list[str],
    workflow_type: str,
    overrides: dict[str, Any],
    recorded: dict[str, Any] | None = None,
) -> ConfigWorkflow:
    """Initialise, run and finalise a bundle workflow; return it for inspection.

    Args:
        root: the bundle folder.
        configs: config file names under `configs/`, merged in order.
        workflow_type: "train" or "infer".
        overrides: config values to set (they win over `recorded`).
        recorded: the settings a checkpoint recorded (`apply_settings`: only keys the config has).
    """
    workflow = ConfigWorkflow(
        config_file=_config_files(root, configs),
        meta_file=str(root / "configs" / "metadata.json"),
        logging_file=str(root / "configs" / "logging.conf"),
        workflow_type=workflow_type,
        bundle_root=str(root),
        **overrides,
    )
    apply_settings(workflow.parser, {k: v for k, v in (recorded or {}).items() if k not in overrides})
    _require_properties(workflow, root, configs)
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    return workflow


def train(
    name: str,
    dataset_dir: str | os.PathLike[str] | list[str | os.PathLike[str]],
    fold: int = 0,
    epochs: int | None = None,
    device: str | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    preset: str = "default",
    overrides: dict[str, Any] | None = None,
    allow_external: bool = False,
) -> Path:
    """Train bundle `name` on a normalised dataset; return the path of the best model (`models/model.pt`).

    The patch bundles take several dataset folders (a list) as one leave-one-patient-out cohort; `fold` is then
    the index of the held-out patient.
    """
    root = bundle_root(name, allow_external)
    data = dataset_setting(name, dataset_dir)
    configs = ["train.json", *preset_configs(name, preset, allow_external)]
    settings: dict[str, Any] = {}
    # The bundles fine-tune from models/model.pt when it exists (MONAI Label's convention); the CLI trains from
    # scratch unless told otherwise with --set pretrained_model=<path>.
    settings["pretrained_model"] = ""
    settings.update(overrides or {})
    settings.update({"dataset_dir": data, "fold": fold})
    settings["output_dir"] = str(Path(output_dir or repo_root() / "runs" / root.name / f"fold{fold}").resolve())
    if epochs is not None:
        settings["max_epochs"] = epochs
    if device is not None:
        settings["device"] = f"$torch.device('{device}')"
    _refuse_finished_run(root, settings)
    run_workflow(root, configs, "train", settings)
    return Path(settings.get("ckpt_dir", root / "models")) / "model.pt"


def _refuse_finished_run(root: Path, settings: dict[str, Any]) -> None:
    """Refuse to rerun a finished training in the same run folder, saying how to continue it instead.

    The bundle itself would end such a run at once without a word (or, with `restart_finished_runs` as MONAI Label
    sets it, retrain over its best model).
    """
    from livervae.handlers.resume import checkpoint_epoch, latest_checkpoint

    if settings.get("resume") is False:
        return
    latest = latest_checkpoint(Path(settings["output_dir"]) / "checkpoints")
    if latest is None:
        return
    max_epochs = settings.get("max_epochs")
    if max_epochs is None:
        parser = ConfigParser()
        parser.read_config(_config_files(root, ["train.json"]))
        max_epochs = parser.get("max_epochs")
    done = checkpoint_epoch(latest)
    if isinstance(max_epochs, int) and done >= max_epochs:
        raise InputError(
            settings["output_dir"],
            f"this run already finished {done} epoch(s); pass --epochs above {done} to continue it, "
            "or another --output to train again",
        )


def evaluate(
    name: str,
    dataset_dir: str | os.PathLike[str] | list[str | os.PathLike[str]],
    fold: int = 0,
    split: str = "val",
    output_dir: str | os.PathLike[str] | None = None,
    device: str | None = None,
    overrides: dict[str, Any] | None = None,
    allow_external: bool = False,
) -> dict[str, Any]:
    """Evaluate bundle `name` on one fold's cases (or all, or another split); return the metrics summary.

    For the patch bundles "val" is the fold's held-out (test) patient.
    """
    root = bundle_root(name, allow_external)
    data = dataset_setting(name, dataset_dir)
    model = Path((overrides or {}).get("model_path", root / "models" / "model.pt"))
    recorded = recorded_settings(model)
    settings = {k: v for k, v in (overrides or {}).items() if k != "model_path"}
    out = Path(output_dir or repo_root() / "runs" / root.name / f"eval_fold{fold}_{split}").resolve()
    settings.update({"dataset_dir": data, "fold": fold, "split": split})
    settings.update({"output_dir": str(out), "handlers#0#load_path": str(model)})
    if device is not None:
        settings["device"] = f"$torch.device('{device}')"
    workflow = run_workflow(root, ["inference.json", "evaluate.json"], "infer", settings, recorded)
    handler = next(h for h in workflow.parser.get_parsed_content("handlers") if hasattr(h, "summary"))
    return {"summary": handler.summary, "output_dir": str(out)}


# MONAI 1.6 warns on every inference about things that do not affect LiverVAE's results: a GPU codec that a
# CPU build lacks, a changed default of Orientationd that the bundles set explicitly, and a MetaTensor affine
# replaced by its own copy. Seen once per case, they bury the one line a user needs.
_HARMLESS_MONAI_WARNINGS = (
    (UserWarning, r"NvImgCodecPydicomReader"),
    (FutureWarning, r"monai\.transforms\.spatial\.dictionary Orientationd\.__init__:labels"),
    (UserWarning, r"Setting affine, but the applied meta contains an affine"),
)


def silence_harmless_monai_warnings() -> None:
    """Hide the MONAI warnings listed in `_HARMLESS_MONAI_WARNINGS` (inference entry points call this)."""
    for category, message in _HARMLESS_MONAI_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    # The same GPU-codec notice as a log line, on CPU builds.
    logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)


class BundlePredictor:
    """Run a bundle's inference pipeline on single CT files, as MONAI Label does: preprocessing, inferer,
    postprocessing (without the saver). The prediction comes back on the input file's own grid.

    Args:
        name: bundle name (or path with `allow_external`).
        model_path: weights; default `<bundle>/models/model.pt`.
        device: "cpu", "cuda", ...; default CUDA when available.
        overrides: config overrides on top of the settings recorded in the checkpoint.
    """

    def __init__(
        self,
        name: str = TUMOR_BUNDLE,
        model_path: str | os.PathLike[str] | None = None,
        device: str | None = None,
        overrides: dict[str, Any] | None = None,
        allow_external: bool = False,
    ) -> None:
        silence_harmless_monai_warnings()
        root = bundle_root(name, allow_external)
        model = Path(model_path or root / "models" / "model.pt")
        self.name = root.name
        self.version = bundle_version(root)
        parser = ConfigParser()
        parser.read_config(_config_files(root, ["inference.json"]))
        parser["bundle_root"] = str(root)
        apply_settings(parser, recorded_settings(model))
        for key, value in (overrides or {}).items():
            parser[key] = value
        self.device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        parser["device"] = f"$torch.device('{self.device}')"
        self.network = load_model_weights(parser.get_parsed_content("network"), model).to(self.device).eval()
        self.preprocessing = parser.get_parsed_content("preprocessing")
        self.inferer = parser.get_parsed_content("inferer")
        from monai.transforms import Compose

        self.postprocessing = Compose(parser.get_parsed_content("postprocessing_transforms"))
        self.amp = self.device.type == "cuda"
        from livervae.uncertainty import PASS_SETTINGS, load_uncertainty_settings

        self.uncertainty = load_uncertainty_settings(
            root / "configs" / "metadata.json",
            model,
            {key: parser.get(f"network_def#{key}", default) for key, default in PASS_SETTINGS.items()},
            review_liver_below=parser.get("review_liver_below", None),
            review_tumor_below=parser.get("review_tumor_below", None),
            review_reconstruction_ratio=parser.get("review_reconstruction_ratio", None),
        )

    @torch.no_grad()
    def predict(self, image_file: str | os.PathLike[str]) -> np.ndarray:
        """Return the 0/1/2 (or 0/1) label map of one NIfTI CT, on the file's own voxel grid, as uint8."""
        data = self.preprocessing({"image": str(image_file)})
        batch = data["image"].unsqueeze(0).to(self.device)
        with torch.autocast("cuda", enabled=self.amp):
            data["pred"] = self.inferer(batch, self.network)[0].float()
        return self._label(data)

    def _label(self, data: dict[str, Any]) -> np.ndarray:
        data = self.postprocessing(data)
        return np.asarray(data["pred"].cpu().numpy()[0], dtype=np.uint8)

    @torch.no_grad()
    def predict_stages(self, image_file: str | os.PathLike[str], keep_passes: bool = False) -> "StagePrediction":
        """`predict`, plus both stages' probabilities (untempered, mean over the test-time passes) on the file's
        own grid, linearly resampled, and stage 1's reconstruction loss. Only the two-stage network has stages.

        Args:
            image_file: a NIfTI CT.
            keep_passes: also return every pass's stage probabilities (S, 2, *spatial) (for benchmarks).

        Raises:
            InputError: the bundle's network is not the two-stage chain.
        """
        from livervae.networks.two_stage import TwoStageLiverTumorNet
        from livervae.transforms.source_grid import probabilities_to_source_grid

        if not isinstance(self.network, TwoStageLiverTumorNet):
            raise InputError(None, f"uncertainty maps need the two-stage bundle {TUMOR_BUNDLE}, not {self.name}")
        data = self.preprocessing({"image": str(image_file)})
        batch = data["image"].unsqueeze(0).to(self.device)
        with torch.autocast("cuda", enabled=self.amp):
            stages = self.network.stage_probabilities(batch)
            reconstruction = self.network.liver_reconstruction_loss(batch, stages.liver)
        data["pred"] = stages.classes()[0].float()

        def to_source(liver: torch.Tensor, tumour: torch.Tensor) -> np.ndarray:
            return probabilities_to_source_grid(torch.cat([liver, tumour], dim=0), data["image"], self.preprocessing)

        mean = to_source(stages.liver[0], stages.tumour[0])
        passes = None
        if keep_passes:
            passes = np.stack([to_source(lp, tp) for lp, tp in zip(stages.liver_passes, stages.tumour_passes)])
        label = self._label(data)
        if label.shape != mean.shape[1:]:
            raise RuntimeError(f"stage probabilities {mean.shape[1:]} are not on the label's grid {label.shape}")
        return StagePrediction(label, mean, passes, reconstruction)

    def predict_with_uncertainty(self, image_file: str | os.PathLike[str]) -> "UncertainPrediction":
        """`predict`, plus the voxel maps (P(liver), P(tumour), uncertainty; calibrated with the recorded
        temperatures) on the file's own grid and the case quality (`livervae.uncertainty`)."""
        from livervae.uncertainty import calibrated_maps, case_quality

        stages = self.predict_stages(image_file)
        maps = calibrated_maps(stages.stages, self.uncertainty)
        quality = case_quality(maps, stages.label, stages.reconstruction_loss, self.uncertainty)
        return UncertainPrediction(stages.label, maps, quality)

    def predict_volume(self, image_file: str | os.PathLike[str], image: Volume) -> Volume:
        """`predict`, returned as a Volume on `image`'s grid (the file's affine)."""
        return label_volume(self.predict(image_file), image)


def label_volume(label: np.ndarray, image: Volume) -> Volume:
    """A predicted label map of `image` as a Volume on its grid; refuses a map of another shape."""
    if label.shape != image.shape:
        raise RuntimeError(f"prediction shape {label.shape} differs from the input's {image.shape}")
    return Volume(label, image.affine.copy(), source=f"prediction of {image.source}")


class StagePrediction(NamedTuple):
    """A label map with both stages' probabilities on the input file's grid (`BundlePredictor.predict_stages`).

    Attributes:
        label: the 0/1/2 label map after post-processing.
        stages: (2, *spatial) P(liver) and P(tumour) of the stages, mean over passes, no temperature.
        passes: (S, 2, *spatial) every pass's, or None.
        reconstruction_loss: stage 1's VAE loss around the liver.
    """

    label: np.ndarray
    stages: np.ndarray
    passes: np.ndarray | None
    reconstruction_loss: float


class UncertainPrediction(NamedTuple):
    """A label map with its voxel maps and case quality, all on the input file's grid."""

    label: np.ndarray
    maps: np.ndarray
    quality: "CaseQuality"


def record_uncertainty_calibration(
    liver_temperature: float,
    tumor_temperature: float,
    reference_reconstruction_loss: float,
    measured_with: str,
    passes: dict[str, Any],
    model_path: str | os.PathLike[str] | None = None,
    liver_bias: float = 0.0,
    tumor_bias: float = 0.0,
) -> Path:
    """Write the tumour bundle's uncertainty calibration into its metadata.json (`uncertainty_calibration`).

    Measured by `benchmarks/uncertainty.py --record` for one set of weights (their SHA-256 is stored) and one set
    of test-time passes (`passes`: the network's flips, hu_shifts, mc_samples); `BundlePredictor` applies it only
    to the same weights and passes.
    """
    import json

    from livervae.io.atomic import write_json_atomic
    from livervae.uncertainty import normalised_passes

    root = bundle_root(TUMOR_BUNDLE)
    path = root / "configs" / "metadata.json"
    model = Path(model_path or root / "models" / "model.pt")
    metadata = json.loads(path.read_text(encoding="utf-8"))
    metadata["uncertainty_calibration"] = {
        "liver_temperature": round(float(liver_temperature), 4),
        "tumor_temperature": round(float(tumor_temperature), 4),
        "liver_bias": round(float(liver_bias), 4),
        "tumor_bias": round(float(tumor_bias), 4),
        "reference_reconstruction_loss": round(float(reference_reconstruction_loss), 6),
        "passes": normalised_passes(passes),
        "model_sha256": file_sha256(model),
        "measured_with": measured_with,
    }
    write_json_atomic(path, metadata, indent=4)
    return path


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file, hex: ties recorded metrics to the exact weights they were measured with."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def recorded_metrics(metadata: dict[str, Any], label: str) -> dict[str, float]:
    """The `eval_metrics` of one evaluation set of a bundle's metadata, prefix removed (see `record_eval_metrics`)."""
    prefix = f"{label}_"
    return {
        current_key(key[len(prefix) :]): value
        for key, value in metadata.get("eval_metrics", {}).items()
        if key.startswith(prefix)
    }


def record_eval_metrics(
    name: str,
    summary: dict[str, Any],
    dataset_dir: Any,
    fold: int | str,
    split: str,
    label: str | None = None,
    model_path: str | os.PathLike[str] | None = None,
    allow_external: bool = False,
) -> Path:
    """Write an evaluation's headline metrics into the bundle's metadata.json `eval_metrics` (atomically).

    `eval_metrics` stays the model zoo's flat name → number map, one set of keys per evaluation set prefixed with
    `label` (default: the dataset folder names), e.g. `real_ct_3dircadb1_17_liver_dice_mean`, so the metrics on
    unseen phantoms and on a real CT sit side by side; `eval_data[label]` says what was measured and the SHA-256 of
    the weights used. Only measured values are written, so the metadata never carries numbers typed by hand.
    Other labels' entries are kept; entries of no recorded label (an older record) are dropped. `lesion_recall`,
    `lesion_precision`, `lesion_detected` and `lesion_reference_lesions` are the LiTS detection numbers
    (`summary["lesions"]`); `lesion_any_overlap_recall` and `lesion_any_overlap_precision` the lenient ones.
    """
    import json
    import math

    from livervae.data.cohort import dataset_dirs
    from livervae.io.atomic import write_json_atomic

    root = bundle_root(name, allow_external)
    path = root / "configs" / "metadata.json"
    metadata = json.loads(path.read_text(encoding="utf-8"))
    keys = ("liver_dice_mean", "tumor_dice_mean", "tumor_dice_global", "liver_hd95_mm_mean", "tumor_hd95_mm_mean")
    keys += ("auc_pooled",)
    metrics = {
        k: round(float(summary[k]), 4) for k in keys if summary.get(k) is not None and not math.isnan(float(summary[k]))
    }
    folds = summary.get("folds", {})
    aucs = [f["auc"] for f in folds.values() if f.get("auc") is not None]
    if aucs:
        metrics["auc_fold_mean"] = round(float(sum(aucs) / len(aucs)), 4)
        metrics["auc_fold_min"] = round(float(min(aucs)), 4)
    # lesion_*: the LiTS detection criterion (summary["lesions"]); lesion_any_overlap_*: the lenient count.
    lesion_keys = (
        ("lesions", "lesion", ("recall", "precision", "detected", "reference_lesions")),
        ("lesions_any_overlap", "lesion_any_overlap", ("recall", "precision")),
    )
    for group, prefix, names in lesion_keys:
        for key in names:
            value = summary.get(group, {}).get(key)
            if value is not None and not math.isnan(float(value)):
                metrics[f"{prefix}_{key}"] = round(float(value), 4)
    names = "+".join(p.name for p in dataset_dirs(dataset_dir))
    label = label or names
    count = f"{summary['cases']} case(s)" if "cases" in summary else f"{len(folds)} fold(s)"
    described: dict[str, Any] = {"data": f"{names}, fold {fold}, split {split}, {count}"}
    model = Path(model_path or root / "models" / "model.pt")
    if model.is_file():
        described["model_sha256"] = file_sha256(model)
    data = metadata.get("eval_data")
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        data = {}  # an older single record, measured with other weights
    data.pop(label, None)
    kept = {
        key: value
        for key, value in metadata.get("eval_metrics", {}).items()
        if any(key.startswith(f"{other}_") for other in data)
    }
    metadata["eval_metrics"] = {**kept, **{f"{label}_{key}": value for key, value in metrics.items()}}
    metadata["eval_data"] = {**data, label: described}
    write_json_atomic(path, metadata, indent=4)  # the bundles' own layout, so the diff shows only the metrics
    return path
