"""Resumable training: a rolling checkpoint after every epoch, and the run picks up where it stopped."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from monai.handlers import CheckpointLoader
from torch import nn

from livervae.errors import InputError
from livervae.handlers.checkpoint_saver import AtomicCheckpointSaver
from livervae.io.checkpoint import read_checkpoint

logger = logging.getLogger(__name__)

_EPOCH = re.compile(r"checkpoint_epoch=(\d+)\.pt$")


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
        saved, _ = read_checkpoint(path, key=None)
    except InputError:  # the loader itself raises the error users see for an unreadable file
        return
    for name in [name for name in loader.load_dict if name not in saved]:
        if name == "trainer" or isinstance(loader.load_dict[name], nn.Module):
            continue
        logger.warning("%s has no saved %r (written by an older version?); it starts fresh", path, name)
        loader.load_dict = {key: value for key, value in loader.load_dict.items() if key != name}
