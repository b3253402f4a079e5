"""Benchmark LiverVAE's two-stage inference against MONAI's default sliding-window SegResNet, in one run.

Both segment the same CT on the same device: the shipped real CT (3D-IRCADb-01 patient 17, 512 × 512 × 119)
extended to `--slices` slices by mirroring it along z (and, with `--side`, cut to the central square of each
slice; written to a temporary folder and deleted afterwards). Each method runs in its own fresh process, so its
peak host memory (and, on a GPU, its peak CUDA memory) is its own, measured with `machine.PeakMemory` from the
method's start. Timed per method:

- end to end: read the NIfTI, infer, write the label map (what a user waits for), model loading excluded and
  reported separately;
- inference alone: the network part (LiverVAE: resampling, both stages and post-processing; MONAI default:
  sliding window only).

MONAI's default is `SegResNet(spatial_dims=3, in_channels=1, out_channels=3)` with `sliding_window_inference`
(roi 128³, sw_batch_size 4, overlap 0.25) on the CT's own grid, as in REFERENCE.md's GPU timings; its weights are
random (speed does not depend on them). LiverVAE runs `livervae infer` with the tumour bundle's trained weights
(`make train`, or `--model`) and the settings recorded in them. Ratios are printed last.

    python benchmarks/inference.py [--slices 160] [--side 512] [--device cpu|cuda] [--model model.pt] [--threads N]
        [--json out]
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling scripts, not a package
from machine import PeakMemory, describe  # noqa: E402

TARGET_SPEEDUP = 6.0  # issue: two-stage ≥ 6× MONAI's default on the same GPU
TARGET_CPU_SECONDS = 60.0  # issue: ≤ 60 s end to end on 2 CPU cores


def mirrored_slices(n_source: int, n_target: int) -> np.ndarray:
    """Source slice indices that extend `n_source` slices to `n_target` by mirroring (0, 1, ..., n-1, n-1, ...)."""
    period = 2 * n_source
    index = np.arange(n_target) % period
    return np.where(index < n_source, index, period - 1 - index)


def make_ct(source: Path, slices: int, out: Path, side: int | None = None) -> Path:
    """Write the CT at `source` extended (or cut) to `slices` axial slices as `out`; return `out`.

    Args:
        source: a NIfTI CT.
        slices: axial slices of the written CT, mirrored along z (see `mirrored_slices`).
        out: the NIfTI file to write.
        side: with a value, keep only the central `side` × `side` voxels of each slice (the affine moves with the
            cut, so every kept voxel stays where it was in the world); None keeps the whole slice.
    """
    import nibabel as nib

    image = nib.load(str(source))
    data = np.asanyarray(image.dataobj)
    affine = image.affine.copy()
    if side is not None:
        starts = [max((n - side) // 2, 0) for n in data.shape[:2]]
        data = data[starts[0] : starts[0] + side, starts[1] : starts[1] + side]
        affine[:3, 3] = affine[:3, :3] @ np.array([*starts, 0]) + affine[:3, 3]
    extended = data[:, :, mirrored_slices(data.shape[2], slices)]
    nib.save(nib.Nifti1Image(extended, affine, image.header), str(out))
    return out


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _run_monai_default(ct: str, out: str, device: str, threads: int | None, repeats: int) -> dict[str, Any]:
    import torch
    from monai.data import MetaTensor
    from monai.inferers import sliding_window_inference
    from monai.networks.nets import SegResNet
    from monai.transforms import Compose, EnsureChannelFirst, LoadImage, SaveImage, ScaleIntensityRange

    peak = PeakMemory(device)
    peak.reset()
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    torch.manual_seed(0)
    network = SegResNet(spatial_dims=3, in_channels=1, out_channels=3).to(device).eval()
    load_s = time.perf_counter() - start
    read = Compose([LoadImage(), EnsureChannelFirst(), ScaleIntensityRange(-100, 250, 0.0, 1.0, clip=True)])
    save = SaveImage(
        output_dir=out, output_postfix="seg", output_dtype=np.uint8, separate_folder=False, print_log=False
    )
    amp = device.startswith("cuda")
    best_total = best_infer = float("inf")
    for _ in range(repeats + (1 if amp else 0)):  # one untimed warm-up on a GPU
        _sync(device)
        start = time.perf_counter()
        image = read(ct)
        batch = image.unsqueeze(0).to(device)
        _sync(device)
        infer_start = time.perf_counter()
        with torch.no_grad(), torch.autocast("cuda", enabled=amp):
            logits = sliding_window_inference(batch, (128, 128, 128), 4, network, overlap=0.25)
        label = logits.argmax(1).to(torch.uint8)
        _sync(device)
        infer_s = time.perf_counter() - infer_start
        save(MetaTensor(label.cpu(), meta=image.meta))  # the input's metadata (affine) for the writer
        total = time.perf_counter() - start
        best_total, best_infer = min(best_total, total), min(best_infer, infer_s)
    return _result("MONAI default sliding window", load_s, best_total, best_infer, peak)


def _run_livervae(
    ct: str, out: str, device: str, threads: int | None, repeats: int, model: str | None
) -> dict[str, Any]:
    import torch

    from livervae.bundle import BundlePredictor
    from livervae.infer import infer

    peak = PeakMemory(device)
    peak.reset()
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    predictor = BundlePredictor(model_path=model, device=device)
    load_s = time.perf_counter() - start
    best_total = best_infer = float("inf")
    predict = predictor.predict
    timings: list[float] = []

    def timed_predict(image_file: Any) -> np.ndarray:
        _sync(device)
        begin = time.perf_counter()
        label = predict(image_file)
        _sync(device)
        timings.append(time.perf_counter() - begin)
        return label

    predictor.predict = timed_predict  # type: ignore[method-assign]
    for _ in range(repeats + (1 if device.startswith("cuda") else 0)):
        start = time.perf_counter()
        infer(ct, Path(out) / "livervae_seg.nii.gz", predictor=predictor, overlay=False)
        best_total, best_infer = min(best_total, time.perf_counter() - start), min(best_infer, timings[-1])
    return _result("LiverVAE two-stage", load_s, best_total, best_infer, peak)


def _result(method: str, load_s: float, total_s: float, infer_s: float, peak: PeakMemory) -> dict[str, Any]:
    cuda_mib = peak.peak_cuda_mib()
    return {
        "method": method,
        "model_load_s": round(load_s, 3),
        "end_to_end_s": round(total_s, 3),
        "inference_s": round(infer_s, 3),
        "peak_rss_mib": round(peak.peak_rss_mib(), 1),
        "peak_cuda_mib": None if cuda_mib is None else round(cuda_mib, 1),
    }


def _in_fresh_process(target: Any, *args: Any) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(target, args)


def report(rows: list[dict[str, Any]], machine: str, shape: tuple[int, ...], device: str) -> str:
    """The results table and, last, the ratios against the issue's targets."""
    lines = [f"machine: {machine}", f"volume: {' x '.join(map(str, shape))} voxels, device {device}"]
    lines.append(
        f"{'method':<30} {'load s':>7} {'end-to-end s':>13} {'inference s':>12} {'peak RSS MiB':>13} {'CUDA MiB':>9}"
    )
    for row in rows:
        cuda = "-" if row["peak_cuda_mib"] is None else f"{row['peak_cuda_mib']:.0f}"
        lines.append(
            f"{row['method']:<30} {row['model_load_s']:>7.2f} {row['end_to_end_s']:>13.2f} {row['inference_s']:>12.2f} "
            f"{row['peak_rss_mib']:>13.0f} {cuda:>9}"
        )
    default, ours = rows
    speedup_total = default["end_to_end_s"] / ours["end_to_end_s"]
    speedup_infer = default["inference_s"] / ours["inference_s"]
    target = f"target >= {TARGET_SPEEDUP:.0f}x on a GPU"
    if not device.startswith("cuda"):
        target += (
            f"; LiverVAE end to end {ours['end_to_end_s']:.1f} s vs target <= {TARGET_CPU_SECONDS:.0f} s on 2 cores"
        )
    lines.append(
        f"ratio MONAI default / LiverVAE: end to end {speedup_total:.2f}x, inference {speedup_infer:.2f}x, "
        f"peak RSS {default['peak_rss_mib'] / ours['peak_rss_mib']:.2f} ({target})"
    )
    return "\n".join(lines)


def _shape(path: Path) -> tuple[int, ...]:
    import nibabel as nib

    return tuple(int(n) for n in nib.load(str(path)).shape)


def main(argv: list[str] | None = None) -> int:
    from livervae.paths import real_case_dir

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=160, help="axial slices of the benchmark CT (default 160)")
    parser.add_argument(
        "--side", type=int, default=None, help="keep the central SIDE x SIDE voxels of each slice (default: all 512)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--model", default=None, help="two-stage model.pt (default: the tumour bundle's, from make train)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per method; the best counts (default 1)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    machine = describe(gpu=args.device.startswith("cuda"))
    work = Path(tempfile.mkdtemp(prefix="livervae_bench_"))
    try:
        ct = make_ct(real_case_dir() / "nifti" / "ct.nii.gz", args.slices, work / "ct.nii.gz", args.side)
        shape = _shape(ct)
        print(f"benchmark CT: {ct} ({args.slices} slices), device {args.device}", flush=True)
        common = (str(ct), str(work), args.device, args.threads, args.repeats)
        print("MONAI default sliding window ...", flush=True)
        rows = [_in_fresh_process(_run_monai_default, *common)]
        print("LiverVAE two-stage ...", flush=True)
        rows.append(_in_fresh_process(_run_livervae, *common, args.model))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "shape": shape, "device": args.device, "rows": rows}))
    print(report(rows, machine, shape, args.device))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
