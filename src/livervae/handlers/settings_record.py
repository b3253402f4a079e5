"""Training settings saved next to the weights, and checked before a model is chained to another."""

from __future__ import annotations

import os
from typing import Any

from livervae.errors import InputError
from livervae.io.checkpoint import read_checkpoint


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
    _, recorded = read_checkpoint(path, settings_key=key, missing="checkpoint not found (train the liver bundle first)")
    for name, value in expected.items():
        if name in recorded and _as_list(recorded[name]) != _as_list(value):
            raise InputError(path, f"was trained with {name}={recorded[name]}, but this bundle expects {value}")


def _as_list(value: Any) -> Any:
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else value
