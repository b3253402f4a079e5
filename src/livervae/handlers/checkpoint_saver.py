"""MONAI's CheckpointSaver made atomic: a process killed while saving never loses the last good file."""

from __future__ import annotations

import os
from typing import Any

from ignite.handlers import DiskSaver
from monai.handlers import CheckpointSaver


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
