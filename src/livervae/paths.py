"""Where LiverVAE finds the shared real CT data."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "LIVERVAE_DATA_DIR"
# The repository root is three levels above this file in the source layout (src/livervae/paths.py).
_REPO_ROOT = Path(__file__).resolve().parents[2]


def repo_root() -> Path:
    """Return the root of the LiverVAE checkout this package was installed from (editable install)."""
    return _REPO_ROOT


def shared_data_dir() -> Path:
    """Return the folder holding the shared public CT data.

    `LIVERVAE_DATA_DIR` wins when set; otherwise `../shared/data` next to the repository root.
    The folder is not required to exist: callers that need a file report its absence themselves.
    """
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return (_REPO_ROOT.parent / "shared" / "data").resolve()


def real_case_dir() -> Path:
    """Return the shipped 3D-IRCADb-01 patient 17 folder (the demo's real CT case)."""
    return shared_data_dir() / "3dircadb1_17"
