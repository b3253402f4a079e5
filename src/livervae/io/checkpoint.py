"""The one place LiverVAE reads checkpoints (always `weights_only=True`) and applies the settings they record."""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from livervae.errors import InputError
from livervae.labels import current_key

logger = logging.getLogger(__name__)


def read_checkpoint(
    path: str | os.PathLike[str],
    key: str | None = "model",
    settings_key: str = "settings",
    missing: str = "checkpoint not found",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a checkpoint safely and return (state, settings).

    Args:
        path: the `.pt` file.
        key: the entry holding the state (a plain state dict without it is the state itself); None returns the
            whole checkpoint as the state.
        settings_key: the entry holding the training settings (`SettingsRecord`); empty when absent.
        missing: what the error says when the file does not exist.

    Raises:
        InputError: missing file, a file that needs unpickling code or is truncated, or no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, missing)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise InputError(path, f"cannot load as a weights-only checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(checkpoint, dict):
        raise InputError(path, "does not hold a state dict")
    state = checkpoint if key is None else checkpoint.get(key, checkpoint)
    if not isinstance(state, dict):
        raise InputError(path, "does not hold a state dict")
    settings = checkpoint.get(settings_key, {})
    settings = settings if isinstance(settings, dict) else {}
    # Checkpoints of older versions spell "tumour" in their keys (`tumour_net.*`); read them in today's spelling.
    if key is not None:
        state = {current_key(k) if isinstance(k, str) else k: v for k, v in state.items()}
    return state, {current_key(k): v for k, v in settings.items()}


def apply_settings(config: MutableMapping[str, Any], settings: dict[str, Any]) -> MutableMapping[str, Any]:
    """Write each recorded setting into `config`'s key of the same name, where the config has one; return it.

    `config` is a bundle config as a dict (MONAI Label's copy of a bundle) or a MONAI `ConfigParser` (LiverVAE's
    own runs); settings the config does not know are left out, so an older config still runs newer weights.
    """
    for key, value in settings.items():
        if key in config:
            config[key] = value
    return config


def load_model_weights(
    network: nn.Module,
    path: str | os.PathLike[str],
    key: str = "model",
    strict: bool = True,
    prefix: str | None = None,
) -> nn.Module:
    """Load a state dict (plain or under `key`) into `network` with `weights_only=True` and return the network.

    With `prefix` only the entries under it are loaded, prefix removed: e.g. `tumor_net.` takes the tumour stage
    out of a two-stage checkpoint and leaves the liver stage to its own bundle's weights.

    Raises:
        InputError: missing file, a file that is not a plain tensor checkpoint (needs unpickling code),
            a truncated file, weights of another network, or no entry under `prefix`.
    """
    state, _ = read_checkpoint(path, key)
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


# The output layer of a SegResNetVAE: its channels mean another class in another model, so it starts afresh.
SEGMENTATION_OUTPUT_LAYER = r"^conv_final\.2\."


def load_matching_weights(
    network: nn.Module,
    path: str | os.PathLike[str],
    key: str = "model",
    exclude: str | None = SEGMENTATION_OUTPUT_LAYER,
) -> nn.Module:
    """Start `network` from another model's weights wherever name and shape agree; return the network.

    For transfer between LiverVAE's models: the tumour stage starts from the liver stage's encoder and decoder,
    which have already learnt CT on the same synthetic data, instead of from random weights. Tensors whose shape
    differs (the VAE branch's dense layers depend on the patch size), that the source lacks (the severity head) or
    that match `exclude` (a regular expression; by default the output layer) keep their initial values.

    Raises:
        InputError: what `read_checkpoint` raises, or a checkpoint that shares no tensor with the network.
    """
    from monai.networks.utils import copy_model_state  # MONAI's name-and-shape matching copy

    state, _ = read_checkpoint(path, key)
    _, updated, unchanged = copy_model_state(network, state, exclude_vars=exclude, inplace=True)
    if not updated:
        raise InputError(path, "shares no weights (same name and shape) with the network")
    logger.info("started from %s: %d tensors copied, %d kept their initial values", path, len(updated), len(unchanged))
    return network


# The stage-1 settings a two-stage checkpoint records under `liver_<name>` (see the tumour bundle's `settings`).
_STAGE_ONE_SETTINGS = ("pixdim", "patch_size", "hu_window", "init_filters")


def replace_stage_one(
    two_stage_path: str | os.PathLike[str], liver_path: str | os.PathLike[str], out_path: str | os.PathLike[str]
) -> dict[str, Any]:
    """Write a copy of a two-stage checkpoint whose liver stage is another liver model, the tumour stage untouched.

    Gives the chain a retrained liver model without retraining the tumour stage (which still learnt on the old
    liver model's crops: measure before shipping). The liver model must have been trained with the settings the
    chain records for its stage 1.

    Returns:
        The written checkpoint (`model`, `settings`).

    Raises:
        InputError: unreadable checkpoints, a first file with no `liver_net.*` weights, or a liver model whose
            settings or weights do not fit the chain's stage 1.
    """
    from livervae.io.atomic import atomic_path

    chain, settings = read_checkpoint(two_stage_path)
    liver, liver_settings = read_checkpoint(liver_path)
    old = {k[len("liver_net.") :]: v for k, v in chain.items() if k.startswith("liver_net.")}
    if not old:
        raise InputError(two_stage_path, "holds no liver_net.* weights: not a two-stage checkpoint")
    for name in _STAGE_ONE_SETTINGS:
        expected = settings.get(f"liver_{name}")
        if name in liver_settings and expected is not None and _plain(liver_settings[name]) != _plain(expected):
            raise InputError(
                liver_path, f"was trained with {name}={liver_settings[name]}, the chain expects {expected}"
            )
    if set(liver) != set(old) or any(liver[k].shape != old[k].shape for k in old):
        raise InputError(liver_path, "its weights do not fit the chain's liver network")
    written = {"model": {**chain, **{f"liver_net.{k}": v for k, v in liver.items()}}, "settings": settings}
    with atomic_path(out_path) as tmp:
        torch.save(written, tmp)
    return written


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value
