"""Peak host (and GPU) memory of LiverVAE's two-stage inference on 160-, 500- and 1000-slice CTs, in one run.

Each CT is the shipped real CT (512 × 512 × 119) mirrored along z to the slice count (see `inference.py`; `--side`
cuts each slice to its central square), written to a temporary folder and deleted afterwards. Each measurement
runs `livervae infer` (read, both stages, post-processing, write) in its own fresh process, so its peak RSS and, on
a GPU, its peak CUDA memory (`machine.PeakMemory`, from the measurement's start) are that run's alone. With
`--compare-invertd` every volume is also run with MONAI's `Invertd` in place of `SourceGridLabeld` as the last
post-processing step (the resampling back to the source grid), which is what the bundle used before; the ratios
come last.

Targets (issue): a 512 × 512 × 1000 CT infers within 8 GiB of GPU memory and 12 GiB of RAM.

    python benchmarks/memory.py [--slices 160 500 1000] [--side 512] [--device cpu|cuda] [--compare-invertd]
        [--model model.pt] [--json out]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling scripts, not a package
from inference import make_ct  # noqa: E402
from machine import PeakMemory, describe  # noqa: E402

TARGET_RAM_GIB = 12.0
TARGET_GPU_GIB = 8.0


def invertd_override() -> dict[str, Any]:
    """The tumour bundle's inference override that puts MONAI's `Invertd` back as the source-grid step."""
    from livervae.bundle import TUMOR_BUNDLE, bundle_root

    config = json.loads((bundle_root(TUMOR_BUNDLE) / "configs" / "inference.json").read_text(encoding="utf-8"))
    steps = config["postprocessing_transforms"]
    index = next(i for i, step in enumerate(steps) if step.get("_target_", "").endswith("SourceGridLabeld"))
    return {
        f"postprocessing_transforms#{index}": {
            "_target_": "Invertd",
            "keys": "pred",
            "transform": "@preprocessing",
            "orig_keys": "image",
            "nearest_interp": True,
            "to_tensor": True,
        }
    }


def _measure(ct: str, out: str, device: str, invertd: bool, model: str | None) -> dict[str, Any]:
    peak = PeakMemory(device)
    peak.reset()
    from livervae.bundle import BundlePredictor
    from livervae.infer import infer

    predictor = BundlePredictor(model_path=model, device=device, overrides=invertd_override() if invertd else None)
    start = time.perf_counter()
    summary = infer(ct, Path(out) / "seg.nii.gz", predictor=predictor, overlay=False)
    seconds = time.perf_counter() - start
    cuda_mib = peak.peak_cuda_mib()
    return {
        "source_grid_step": "Invertd" if invertd else "SourceGridLabeld",
        "seconds": round(seconds, 2),
        "peak_rss_gib": round(peak.peak_rss_mib() / 1024, 2),
        "peak_cuda_gib": None if cuda_mib is None else round(cuda_mib / 1024, 2),
        "liver_ml": round(float(summary["liver_ml"]), 1),
    }


def _in_fresh_process(*args: Any) -> dict[str, Any]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_measure, args)


def report(rows: list[dict[str, Any]], machine: str, device: str) -> str:
    """The table, then the targets and (with both variants measured) the ratios, last."""
    lines = [f"machine: {machine}; device {device}"]
    lines.append(f"{'slices':>6} {'source-grid step':<18} {'seconds':>8} {'peak RSS GiB':>13} {'peak CUDA GiB':>14}")
    for row in rows:
        cuda = "-" if row["peak_cuda_gib"] is None else f"{row['peak_cuda_gib']:.2f}"
        lines.append(
            f"{row['slices']:>6} {row['source_grid_step']:<18} {row['seconds']:>8.1f} {row['peak_rss_gib']:>13.2f} "
            f"{cuda:>14}"
        )
    ours = {row["slices"]: row for row in rows if row["source_grid_step"] == "SourceGridLabeld"}
    largest = ours[max(ours)]
    verdict = f"{max(ours)} slices: peak RSS {largest['peak_rss_gib']:.2f} GiB (target <= {TARGET_RAM_GIB:.0f} GiB)"
    if largest["peak_cuda_gib"] is not None:
        verdict += f", peak CUDA {largest['peak_cuda_gib']:.2f} GiB (target <= {TARGET_GPU_GIB:.0f} GiB)"
    lines.append(verdict)
    before = {row["slices"]: row for row in rows if row["source_grid_step"] == "Invertd"}
    ratios = [f"{n}: {ours[n]['peak_rss_gib'] / before[n]['peak_rss_gib']:.2f}" for n in sorted(before) if n in ours]
    if ratios:
        lines.append("ratio peak RSS SourceGridLabeld / Invertd by slices: " + ", ".join(ratios))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from livervae.paths import real_case_dir

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, nargs="+", default=[160, 500, 1000])
    parser.add_argument(
        "--side", type=int, default=None, help="keep the central SIDE x SIDE voxels of each slice (default: all 512)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--compare-invertd", action="store_true", help="also run MONAI's Invertd (before)")
    parser.add_argument(
        "--model", default=None, help="two-stage model.pt (default: the tumour bundle's, from make train)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    machine = describe(gpu=args.device.startswith("cuda"))
    rows = []
    work = Path(tempfile.mkdtemp(prefix="livervae_memory_"))
    try:
        for slices in args.slices:
            ct = make_ct(real_case_dir() / "nifti" / "ct.nii.gz", slices, work / f"ct_{slices}.nii.gz", args.side)
            for invertd in (False, True) if args.compare_invertd else (False,):
                print(f"{slices} slices, {'Invertd' if invertd else 'SourceGridLabeld'} ...", flush=True)
                rows.append(
                    {"slices": slices, **_in_fresh_process(str(ct), str(work), args.device, invertd, args.model)}
                )
            ct.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "device": args.device, "rows": rows}, indent=2))
    print(report(rows, machine, args.device))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
