"""Find the checkpoint to resume from, and load model weights safely (`weights_only=True`)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from ignite.handlers import DiskSaver
from monai.handlers import CheckpointLoader, CheckpointSaver, EarlyStopHandler
from torch import nn

from livervae.errors import InputError

logger = logging.getLogger(__name__)

_EPOCH = re.compile(r"checkpoint_epoch=(\d+)\.pt$")


class _AtomicDiskSaver(DiskSaver):
    """Ignite's DiskSaver, atomic, with an optional fixed file name, removing replaced files only afterwards.

    Ignite's `Checkpoint` removes the file a new checkpoint replaces *before* writing the new one, so a process
    killed in between has neither. Removals are deferred here until the new file is complete, and skipped when the
    new file has the same name (the atomic rename already replaced it).
    """

    def __init__(self, dirname: str | os.PathLike[str], filename: str | None = None) -> None:
        super().__init__(dirname=dirname, require_empty=False, atomic=True)
        self.filename = filename
        self._pending: list[str] = []

    def __call__(self, checkpoint: Any, filename: str, metadata: Any = None) -> None:
        target = self.filename or filename
        super().__call__(checkpoint, target, metadata)
        for old in self._pending:
            if old != target:
                super().remove(old)
        self._pending = []

    def remove(self, filename: str) -> None:
        self._pending.append(self.filename or filename)


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI's CheckpointSaver, writing every file under a temporary name and renaming it when complete.

    MONAI turns Ignite's atomic saving off (older Ignite left such files readable by their owner only; Ignite 0.5
    adds group/other read back), and Ignite removes a replaced checkpoint before writing its successor. Either way a
    process killed while saving loses the best `model.pt` or the resume checkpoint. Here every file is written
    atomically and replaced files are removed only once their successor is complete. Same arguments as
    `CheckpointSaver`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for checkpoint in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if checkpoint is not None:
                handler = checkpoint.save_handler
                checkpoint.save_handler = _AtomicDiskSaver(handler.dirname, getattr(handler, "filename", None))

    def state_dict(self) -> dict[str, Any]:
        """The best-model tracking (scores of the models kept), so a resumed run keeps the best it had.

        Saved in the resume checkpoint (`enable_resume`); without it a resumed run would replace `model.pt` at its
        first validation, however much worse. `load_state_dict` (MONAI's) restores it.
        """
        return dict(self._key_metric_checkpoint.state_dict()) if self._key_metric_checkpoint is not None else {}


def latest_checkpoint(folder: str | os.PathLike[str]) -> str | None:
    """The `*checkpoint_epoch=N.pt` file with the highest N in `folder` (written by `enable_resume`), or
    None when there is none, so training starts fresh."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _EPOCH.search(p.name))]
    return str(max(found)[1]) if found else None


def checkpoint_epoch(path: str | os.PathLike[str]) -> int:
    """The epoch N of a `*checkpoint_epoch=N.pt` file name (0 when the name carries none)."""
    match = _EPOCH.search(Path(path).name)
    return int(match.group(1)) if match else 0


def load_model_weights(
    network: nn.Module,
    path: str | os.PathLike[str],
    key: str = "model",
    strict: bool = True,
    prefix: str | None = None,
) -> nn.Module:
    """Load a state dict (plain or under `key`) into `network` with `weights_only=True` and return the network.

    With `prefix` only the entries under it are loaded, prefix removed: e.g. `tumour_net.` takes the tumour stage
    out of a two-stage checkpoint and leaves the liver stage to its own bundle's weights.

    Raises:
        InputError: missing file, a file that is not a plain tensor checkpoint (needs unpickling code),
            a truncated file, weights of another network, or no entry under `prefix`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise InputError(path, f"cannot load as a weights-only checkpoint ({type(exc).__name__}: {exc})") from exc
    state = checkpoint.get(key, checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise InputError(path, "does not hold a state dict")
    if prefix is not None:
        state = {name[len(prefix) :]: value for name, value in state.items() if name.startswith(prefix)}
        if not state:
            raise InputError(path, f"holds no weights under {prefix!r}")
    try:
        network.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(path, f"weights do not fit the network ({first})") from exc
    return network


def _match_schedule_length(engine: Engine, objects: dict[str, Any]) -> None:
    """After resuming, stretch epoch-based LR schedules to the run's current max_epochs.

    A scheduler's state carries its length (`T_max`, `total_iters`) from the interrupted run; resuming with a
    larger `max_epochs` would otherwise continue at the old schedule's end (for cosine annealing: LR 0). The
    learning rate is then set to the stretched schedule's value at the current epoch: torch's cosine schedule
    updates the rate multiplicatively from the previous one, so a rate that had reached 0 would stay 0.
    """
    for obj in objects.values():
        for attribute in ("T_max", "total_iters"):
            old = getattr(obj, attribute, None)
            if isinstance(old, int) and old != engine.state.max_epochs:
                logger.warning(
                    "max_epochs is now %d (was %d): stretching the LR schedule", engine.state.max_epochs, old
                )
                setattr(obj, attribute, engine.state.max_epochs)
        closed_form = getattr(obj, "_get_closed_form_lr", None)
        if closed_form is not None and hasattr(obj, "optimizer"):
            # Also repairs checkpoints written by a stretched run before this fix, whose rate is stuck at 0.
            for group, lr in zip(obj.optimizer.param_groups, closed_form()):
                group["lr"] = lr
            obj._last_lr = [group["lr"] for group in obj.optimizer.param_groups]


def _rolling_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    return [(int(m.group(1)), p) for p in folder.glob("*checkpoint_epoch=*.pt") if (m := _EPOCH.search(p.name))]


def _remove_stale(stale: list[Path]) -> None:
    """Remove the rolling checkpoints an earlier process left, once this run has saved its own.

    Ignite prunes only the files it wrote itself; in distributed runs only rank 0 writes, so only rank 0 prunes.
    """
    if idist.get_rank() == 0:
        for path in stale:
            path.unlink(missing_ok=True)
    stale.clear()


def enable_resume(
    trainer: Engine,
    folder: str | os.PathLike[str],
    objects: dict[str, Any],
    resume: bool = True,
    device: str | torch.device | None = None,
    restart_finished: bool = False,
) -> str | None:
    """Save a full checkpoint after every epoch and, if one exists, resume from it when training starts.

    The checkpoint holds `objects` (network, optimizer, scheduler...), the trainer's AMP GradScaler when it has one
    (`trainer.scaler`, so a resumed AMP run keeps its loss scale), plus the trainer's epoch and
    iteration, so a run killed at any point restarts at the last finished epoch and still ends after
    `max_epochs`. A checkpoint whose epoch has already reached this run's `max_epochs` belongs to a finished run:
    by default it is loaded and the run ends at once (rerunning a finished command does nothing, and a finished
    stage of a multi-stage bundle is skipped); with `restart_finished` the run starts fresh instead, which is what
    repeated MONAI Label training requests need. Attached after the trainer is built because the trainer cannot
    reference handlers that reference it. Only the newest checkpoint is kept, written atomically
    (`AtomicCheckpointSaver`).

    Args:
        trainer: the training engine.
        folder: where the rolling checkpoint `checkpoint_epoch=N.pt` lives.
        objects: name → object with `state_dict`/`load_state_dict`.
        resume: False starts fresh even if a checkpoint exists.
        device: map_location for loading.
        restart_finished: start afresh when the checkpoint's run had already reached `max_epochs`.

    Returns:
        The checkpoint to resume from (unless its run turns out to be finished when training starts), or None.
    """
    folder = Path(folder)
    scaler = getattr(trainer, "scaler", None)  # MONAI's trainers build their GradScaler only with AMP
    if scaler is not None and "scaler" not in objects:
        objects = {**objects, "scaler": scaler}
    if not resume and folder.is_dir() and idist.get_rank() == 0:
        for _, path in _rolling_checkpoints(folder):
            logger.info("starting fresh: removing %s", path)
            path.unlink()
    to_save = {**objects, "trainer": trainer}
    AtomicCheckpointSaver(save_dir=str(folder), save_dict=to_save, save_interval=1, n_saved=1).attach(trainer)
    stale = [path for _, path in _rolling_checkpoints(folder)] if folder.is_dir() else []
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda _: _remove_stale(stale))
    latest = latest_checkpoint(folder) if resume else None
    if latest is not None:
        loader = CheckpointLoader(load_path=latest, load_dict=to_save, map_location=device)
        trainer.add_event_handler(Events.STARTED, _resume, loader, latest, objects, restart_finished)
    return latest


def _resume(
    engine: Engine, loader: CheckpointLoader, path: str, objects: dict[str, Any], restart_finished: bool
) -> None:
    """At STARTED (when the run's max_epochs is known): resume from `path`, or start afresh from a finished run."""
    epoch = checkpoint_epoch(path)
    if engine.state.max_epochs is not None and epoch >= engine.state.max_epochs:
        if not restart_finished:
            if epoch > engine.state.max_epochs:
                raise InputError(
                    path, f"holds {epoch} finished epochs, more than this run's max_epochs {engine.state.max_epochs}"
                )
            logger.info("%s: this run already finished %d epoch(s); nothing to train", path, epoch)
            loader(engine)
            return
        logger.info(
            "%s is the end of a finished run (epoch %d, this run has max_epochs %d): starting fresh",
            path,
            epoch,
            engine.state.max_epochs,
        )
        return
    logger.info("resuming from %s", path)
    _skip_missing_state(loader, path)
    loader(engine)
    _match_schedule_length(engine, objects)


def _skip_missing_state(loader: CheckpointLoader, path: str) -> None:
    """Let a checkpoint from an older LiverVAE resume when it lacks bookkeeping state added since.

    Networks and the trainer's epoch must be there (a checkpoint without them is refused when loaded); other
    objects (e.g. the best-model tracker) missing from the file start fresh, with a warning naming them.
    """
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - the loader itself raises the error users see for an unreadable file
        return
    if not isinstance(saved, dict):
        return
    for name in [name for name in loader.load_dict if name not in saved]:
        if name == "trainer" or isinstance(loader.load_dict[name], nn.Module):
            continue
        logger.warning("%s has no saved %r (written by an older version?); it starts fresh", path, name)
        loader.load_dict = {key: value for key, value in loader.load_dict.items() if key != name}


def enable_early_stopping(evaluator: Engine, trainer: Engine, patience: int, metric: str) -> EarlyStopHandler | None:
    """Stop `trainer` when the evaluator's `metric` has not improved for `patience` validations (0 = never).

    Attached after both engines exist, for the same reason as `enable_resume`.
    """
    if patience <= 0:
        return None
    handler = EarlyStopHandler(
        patience=patience, score_function=lambda engine: engine.state.metrics[metric], trainer=trainer
    )
    handler.attach(evaluator)
    return handler


class SettingsRecord:
    """Training settings that save into a checkpoint next to the weights (`state_dict` protocol).

    Stage 1 records its spacing, window and patch size in `model.pt`; stage 2 checks them before chaining the
    two models, because a liver model run at the wrong spacing or window fails silently. (Not a dict
    subclass: Ignite's Checkpoint would descend into a mapping instead of calling `state_dict`.)
    """

    def __init__(self, **settings: Any) -> None:
        self.settings = dict(settings)

    def state_dict(self) -> dict[str, Any]:
        return dict(self.settings)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.settings = dict(state)


def check_settings(path: str | os.PathLike[str], expected: dict[str, Any], key: str = "settings") -> None:
    """Refuse a checkpoint whose recorded settings differ from `expected` (keys absent from the record pass).

    Raises:
        InputError: missing or unreadable checkpoint, or a setting that differs.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found (train the liver bundle first)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(path, f"cannot load as a weights-only checkpoint ({type(exc).__name__}: {exc})") from exc
    recorded = checkpoint.get(key, {}) if isinstance(checkpoint, dict) else {}
    for name, value in expected.items():
        if name in recorded and _as_list(recorded[name]) != _as_list(value):
            raise InputError(path, f"was trained with {name}={recorded[name]}, but this bundle expects {value}")


def _as_list(value: Any) -> Any:
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else value
