"""Read and write NIfTI volumes with the checks LiverVAE applies to every input."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from livervae.errors import InputError
from livervae.io.atomic import atomic_path
from livervae.io.volume import Volume, require_3d, require_finite, require_size_within_limit


def load_nifti(path: str | os.PathLike[str]) -> Volume:
    """Load a NIfTI file as a 3D `Volume`, refusing missing, unreadable, non-3D, empty or non-finite data.

    Scaling (`scl_slope`/`scl_inter`) is applied; integer data stays integer when the header does not scale it.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise InputError(path, f"cannot read as NIfTI ({type(exc).__name__}: {exc})") from exc
    require_size_within_limit(img.shape, str(path))
    try:
        array = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise InputError(path, f"cannot read as NIfTI ({type(exc).__name__}: {exc})") from exc
    array = require_3d(np.asarray(array), str(path))
    require_finite(array, str(path))
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError(path, "header has a degenerate or non-finite affine")
    return Volume(array=array, affine=affine, source=str(path))


def save_nifti(volume: Volume, path: str | os.PathLike[str], dtype: np.dtype | type | None = None) -> Path:
    """Write `volume` to `path` atomically (sform and qform both set to scanner coordinates, units mm)."""
    array = volume.array if dtype is None else volume.array.astype(dtype, copy=False)
    img = nib.Nifti1Image(array, volume.affine)
    img.header.set_data_dtype(array.dtype)
    img.set_qform(volume.affine, code=1)
    img.set_sform(volume.affine, code=1)
    img.header.set_xyzt_units(xyz="mm")
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return Path(path)
