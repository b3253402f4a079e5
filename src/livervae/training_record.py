"""What trained a bundle's shipped weights, read back from the training run itself for `metadata.json`.

The model zoo's metadata says which data, how many epochs and which code produced a model. Here those facts are
read from the run folder `livervae train` wrote (TensorBoard scalars, the last resume checkpoint) and the
dataset's datalist, never typed in, and stored under `metadata.json`'s `training` key with the weights' SHA-256.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from livervae.errors import InputError
from livervae.handlers.resume import checkpoint_epoch, latest_checkpoint
from livervae.io.checkpoint import read_checkpoint


def _scalars(run_dir: Path) -> dict[str, list[tuple[int, float, float]]]:
    """Every scalar in the run's TensorBoard files: tag -> [(step, value, wall time)], resumed runs merged."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, list[tuple[int, float, float]]] = {}
    for events in sorted(run_dir.glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend((e.step, e.value, e.wall_time) for e in accumulator.Scalars(tag))
    return {tag: sorted(values) for tag, values in scalars.items()}


def git_commit(root: Path, revision: str = "HEAD") -> str:
    """The full hash of `revision` (default the checked-out commit; a short hash or a tag works) in the repository
    at `root`, so records always name a commit by its 40 hex digits (empty when git cannot tell)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return ""
    return done.stdout.strip()


def training_record(
    run_dir: str | os.PathLike[str],
    dataset_dir: str | os.PathLike[str],
    fold: int,
    command: str,
    commit: str,
    key_metric: str | None = None,
    checkpoints_dir: str | os.PathLike[str] | None = None,
    leave_one_patient_out: bool = False,
) -> dict[str, Any]:
    """Summarise a finished training run: data, epochs, the best validation epoch, wall time, code and machine.

    Args:
        run_dir: the run folder (`--output` of `livervae train`).
        dataset_dir: the dataset it trained on (its datalist gives the training and validation cases).
        fold: the validation fold.
        command: the command line that ran the training.
        commit: the commit of the code that trained.
        key_metric: the validation scalar that chose the model (default: the only `val_*` scalar, or
            `val_mean_dice`).
        checkpoints_dir: where the run's resume checkpoints are (default `<run_dir>/checkpoints`; the patch VAE
            keeps its classifier's under `<output>/checkpoints/classifier`).
        leave_one_patient_out: `fold` is a held-out patient (the patch bundles), not a datalist fold: the record
            names that patient, and the training patients include the bundle's validation patient(s).

    Raises:
        InputError: a run folder without TensorBoard scalars or resume checkpoints, or a dataset without datalist.
    """
    run, data = Path(run_dir), Path(dataset_dir)
    scalars = _scalars(run)
    validation = sorted(tag for tag in scalars if tag.startswith("val_"))
    if not validation:
        raise InputError(run, "no validation scalars in the run's TensorBoard files")
    key = key_metric or ("val_mean_dice" if "val_mean_dice" in validation else validation[0])
    if key not in scalars:
        raise InputError(run, f"no {key} scalar in the run's TensorBoard files (has {', '.join(validation)})")
    best_step, best_value, _ = max(scalars[key], key=lambda s: (s[1], -s[0]))
    folder = Path(checkpoints_dir) if checkpoints_dir is not None else run / "checkpoints"
    last = latest_checkpoint(folder)
    if last is None:
        raise InputError(folder, "no resume checkpoint (checkpoint_epoch=N.pt)")
    epochs = checkpoint_epoch(last)
    trainer = read_checkpoint(last, key=None)[0].get("trainer", {})
    datalist_path = data / "datalist.json"
    if not datalist_path.is_file():
        raise InputError(data, "no datalist.json")
    cases = json.loads(datalist_path.read_text(encoding="utf-8"))["training"]
    wall_times = [wall for values in scalars.values() for _, _, wall in values]
    if leave_one_patient_out:
        from livervae.data.cohort import load_cohort, lopo_split

        split = lopo_split(load_cohort(data), fold)
        described = {
            "data": f"{data.name} ({datalist_path.parent.name}/datalist.json): {len(cases)} cases, "
            f"patient {split['test_patient']} held out (fold {fold})",
            "training_cases": sorted(split["train_patients"]),
            "held_out_patient": split["test_patient"],
        }
    else:
        described = {
            "data": f"{data.name} ({datalist_path.parent.name}/datalist.json): {len(cases)} cases, "
            f"fold {fold} validated",
            "training_cases": sorted(c["case_id"] for c in cases if c.get("fold") != fold),
            "validation_cases": sorted(c["case_id"] for c in cases if c.get("fold") == fold),
        }
    return {
        **described,
        "epochs": epochs,
        "max_epochs": int(trainer.get("max_epochs", epochs)),
        "iterations": int(trainer.get("iteration", 0)),
        "key_metric": key,
        "best_epoch": int(best_step),
        "best_value": round(float(best_value), 4),
        "logged_wall_time_s": round(max(wall_times) - min(wall_times), 1),
        "command": command,
        "commit": commit,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
    }


def record_training(
    bundle: str,
    record: dict[str, Any],
    model_path: str | os.PathLike[str] | None = None,
    allow_external: bool = False,
) -> Path:
    """Store `record` under `training` in the bundle's metadata.json, with the SHA-256 of its weights."""
    from livervae.bundle import bundle_root, file_sha256
    from livervae.io.atomic import write_json_atomic

    root = bundle_root(bundle, allow_external)
    model = Path(model_path or root / "models" / "model.pt")
    if not model.is_file():
        raise InputError(model, "no model to describe")
    path = root / "configs" / "metadata.json"
    metadata = json.loads(path.read_text(encoding="utf-8"))
    metadata["training"] = {**record, "model_sha256": file_sha256(model), "model_bytes": model.stat().st_size}
    write_json_atomic(path, metadata, indent=4)
    return path


def stage_two_record_sha256(bundle: str, allow_external: bool = False) -> str:
    """The SHA-256 of the two-stage model whose stage 2 the bundle's `training` record describes (the model that
    run produced, kept through any later stage-1 replacement); empty when there is no record."""
    from livervae.bundle import bundle_root

    path = bundle_root(bundle, allow_external) / "configs" / "metadata.json"
    training = json.loads(path.read_text(encoding="utf-8")).get("training") or {}
    return str(training.get("stage_1", {}).get("two_stage_model_sha256", training.get("model_sha256", "")))


def record_stage_one(
    bundle: str,
    two_stage_sha256: str,
    liver_path: str | os.PathLike[str],
    command: str,
    allow_external: bool = False,
) -> Path:
    """Record in a two-stage bundle's metadata.json that its model's stage 1 was replaced (`livervae rechain`).

    The `training` record keeps describing stage 2's run (its weights are unchanged); `stage_1` says where the
    liver stage now comes from (the liver model's SHA-256, the two-stage model stage 2 came from, the command), and
    `model_sha256`/`model_bytes` describe the bundle's new models/model.pt.

    Args:
        bundle: the two-stage bundle (name or, with `allow_external`, folder).
        two_stage_sha256: SHA-256 of the two-stage model the replacement started from.
        liver_path: the liver model put in as stage 1.
        command: the command line that did it.
        allow_external: accept a bundle folder outside this repository.

    Raises:
        InputError: the bundle has no model, or its training record does not describe the model the replacement
            started from (`stage_two_record_sha256`).
    """
    from livervae.bundle import bundle_root, file_sha256
    from livervae.io.atomic import write_json_atomic

    root = bundle_root(bundle, allow_external)
    model = root / "models" / "model.pt"
    path = root / "configs" / "metadata.json"
    if not model.is_file():
        raise InputError(model, "no model to describe")
    if two_stage_sha256 != stage_two_record_sha256(bundle, allow_external):
        raise InputError(path, "its training record does not describe the two-stage model stage 2 came from")
    metadata = json.loads(path.read_text(encoding="utf-8"))
    metadata["training"] = {
        **metadata["training"],
        "stage_1": {
            "liver_model_sha256": file_sha256(liver_path),
            "two_stage_model_sha256": two_stage_sha256,
            "command": command,
        },
        "model_sha256": file_sha256(model),
        "model_bytes": model.stat().st_size,
    }
    write_json_atomic(path, metadata, indent=4)
    return path
