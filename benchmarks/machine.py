"""The one-line machine description every benchmark prints with its results."""

from __future__ import annotations

import os
import platform


def describe(gpu: bool = False) -> str:
    """CPU model (or architecture), CPU count, torch version and, with `gpu`, the CUDA device's name."""
    import torch

    text = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; torch {torch.__version__}"
    if gpu and torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text
