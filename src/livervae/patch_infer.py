"""`livervae infer` for the patch bundles: one CT and its liver mask in, tumour maps in the input's geometry out.

The patch VAE and its U-Net baselines screen a liver region they are given (a reference label map, or a liver
segmentation from `liver_ct_segmentation`); only voxels in liver patches are scored. Outputs, all on the input
CT's grid and written only when the whole run succeeded (staged in a hidden folder next to the output, then
renamed):

- patch VAE: `<out>` tumour probability map, `<stem>_uncertainty.nii.gz` (variance over latent samples),
  `<stem>_tumor_coordinates.json` (predicted tumour centres of the patches at or above the decision threshold);
- U-Net baselines: `<out>` binary tumour mask (closed), `<stem>_tumor_probability.nii.gz`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from livervae.bundle import PATCH_BUNDLES, PATCH_VAE_BUNDLE, UNET_BUNDLE, bundle_root, recorded_settings, run_workflow
from livervae.errors import InputError
from livervae.infer import NIFTI_SUFFIXES, read_input
from livervae.io.nifti import load_nifti, save_nifti

# bundle output postfix -> name of the file next to the main output ("" is the main output itself)
_OUTPUTS = {
    PATCH_VAE_BUNDLE: {"tumor_probability": "", "uncertainty": "_uncertainty"},
    UNET_BUNDLE: {"tumor_seg": "", "tumor_probability": "_tumor_probability"},
}


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def read_liver_mask(path: str | os.PathLike[str], image_shape: tuple[int, ...], image_affine: np.ndarray) -> None:
    """Check that a liver mask (or 0/1/2 label map) is a readable NIfTI on the CT's grid with some liver.

    Raises:
        InputError: missing or unreadable file, another grid, or no liver voxel.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "liver mask not found")
    mask = load_nifti(path)
    if tuple(mask.shape) != tuple(image_shape):
        raise InputError(path, f"liver mask of shape {tuple(mask.shape)} is not on the CT's grid {tuple(image_shape)}")
    if not np.allclose(mask.affine, image_affine, atol=1e-3):
        raise InputError(path, "liver mask has another orientation, spacing or origin than the CT")
    if not np.any(mask.array > 0):
        raise InputError(path, "empty liver: the mask has no voxel above 0")


def infer_patches(
    input_path: str | os.PathLike[str],
    liver_mask: str | os.PathLike[str] | None,
    output_path: str | os.PathLike[str],
    bundle: str = PATCH_VAE_BUNDLE,
    series_uid: str | None = None,
    device: str | None = None,
    model_path: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run a patch bundle's inference on one CT; return a summary with the written files.

    Raises:
        InputError: bad CT, bad or missing liver mask, an output name that is not NIfTI, or no trained model.
    """
    name = Path(bundle).name
    if name not in PATCH_BUNDLES:
        raise InputError(bundle, f"not a patch bundle ({', '.join(PATCH_BUNDLES)})")
    source, output = Path(input_path), Path(output_path)
    if not output.name.endswith(NIFTI_SUFFIXES):
        raise InputError(output, "output must end in .nii or .nii.gz")
    if liver_mask is None:
        raise InputError(None, f"{name} scores the liver region only: give its liver mask (--liver-mask)")
    start = time.perf_counter()
    image, _ = read_input(source, series_uid)
    read_liver_mask(liver_mask, image.shape, image.affine)
    root = bundle_root(name)
    model = Path(model_path or root / "models" / "model.pt")
    recorded = recorded_settings(model)
    settings = dict(overrides or {})
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        if source.is_file():
            image_file = source
        else:
            image_file = staging / "image.nii.gz"
            save_nifti(image, image_file)
        results = staging / "out"
        settings.update(
            {
                "datalist": [{"image": str(image_file), "label": str(Path(liver_mask)), "case_id": "case"}],
                "output_dir": str(results),
                "handlers#0#load_path": str(model),
            }
        )
        if device is not None:
            settings["device"] = f"$torch.device('{device}')"
        run_workflow(root, ["inference.json"], "infer", settings, recorded)
        targets: dict[Path, Path] = {}
        for postfix, suffix in _OUTPUTS[name].items():
            found = sorted(results.glob(f"*_{postfix}.nii.gz"))
            if len(found) != 1:
                raise RuntimeError(f"inference wrote {len(found)} '{postfix}' maps, expected 1")
            targets[found[0]] = output if not suffix else output.with_name(f"{_stem(output)}{suffix}.nii.gz")
        coordinates = results / "case_tumor_coordinates.json"
        if coordinates.is_file():
            targets[coordinates] = output.with_name(f"{_stem(output)}_tumor_coordinates.json")
        report = json.loads((results / "summary.json").read_text())
        for src, dst in targets.items():
            os.replace(src, dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {
        "bundle": name,
        "patches": report.get("patches"),
        "outputs": [str(p) for p in targets.values()],
        "seconds": round(time.perf_counter() - start, 2),
    }
