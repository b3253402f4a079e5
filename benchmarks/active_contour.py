"""Benchmark LiverVAE's torch morphological snakes against scikit-image on the same volumes, in one run.

For each size (128³ and 256³ by default) and each algorithm (morphological Chan-Vese, the refinement the tumour
bundle runs, and the geodesic active contour) it times scikit-image, the torch CPU path and, where a GPU is
available, the torch CUDA path on identical inputs, checks that all masks are identical voxel for voxel, and prints
the speed-up ratios last. The input is a noisy liver-like volume holding several lesions, initialised from a
perturbed lesion mask, as in the post-processing.

    python benchmarks/active_contour.py [--sizes 128 256] [--iterations 4] [--repeats 3] [--threads 2] [--json out]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from skimage.segmentation import morphsnakes

from livervae.active_contours import (
    inverse_gaussian_gradient,
    morphological_chan_vese,
    morphological_geodesic_active_contour,
)


def make_volume(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A float32 liver-like volume of side `size` with dark lesions, and a dilated, shifted lesion mask."""
    rng = np.random.default_rng(seed)
    shape = (size, size, size)
    image = np.full(shape, 110.0, dtype=np.float32)
    lesions = np.zeros(shape, dtype=bool)
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    for _ in range(6):
        centre = rng.uniform(0.2, 0.8, size=3) * size
        radius = rng.uniform(0.04, 0.12) * size
        ball = sum((g - c) ** 2 for g, c in zip(grid, centre)) < radius**2
        lesions |= ball
    image[lesions] = 60.0
    image = ndimage.gaussian_filter(image, 1.5) + rng.normal(0, 12, size=shape).astype(np.float32)
    init = np.roll(ndimage.binary_dilation(lesions, iterations=2), 2, axis=0)
    return image.astype(np.float32), init


def _reset_skimage() -> None:
    # scikit-image keeps its curvature alternation in module state; restart it so every call is comparable.
    morphsnakes._curvop = morphsnakes._fcycle(
        [lambda u: morphsnakes.sup_inf(morphsnakes.inf_sup(u)), lambda u: morphsnakes.inf_sup(morphsnakes.sup_inf(u))]
    )


def _time(call: Callable[[], Any], repeats: int, sync: Callable[[], None] = lambda: None) -> tuple[float, Any]:
    """Best wall time of `repeats` calls (after one warm-up call) and the last result."""
    result = call()
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        sync()
        best = min(best, time.perf_counter() - start)
    return best, result


def _as_numpy(mask: Any) -> np.ndarray:
    return mask.cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)


def run(sizes: list[int], iterations: int, repeats: int, skimage_repeats: int) -> list[dict[str, Any]]:
    """Time every algorithm and size on every available path; return one row per (algorithm, size)."""
    cuda = torch.cuda.is_available()
    rows = []
    for size in sizes:
        image, init = make_volume(size)
        gimage = inverse_gaussian_gradient(image, alpha=100.0, sigma=2.0)
        cases = {
            "chan_vese": (
                lambda: (_reset_skimage(), morphsnakes.morphological_chan_vese(image, iterations, init, 1))[1],
                lambda img, lvl: morphological_chan_vese(img, iterations, lvl, 1),
                image,
            ),
            "geodesic": (
                lambda: (
                    _reset_skimage(),
                    morphsnakes.morphological_geodesic_active_contour(gimage, iterations, init, 1, "auto", 1),
                )[1],
                lambda img, lvl: morphological_geodesic_active_contour(img, iterations, lvl, 1, "auto", 1),
                gimage,
            ),
        }
        for name, (reference, ours, data) in cases.items():
            print(f"{name} {size}^3, {iterations} iterations ...", file=sys.stderr, flush=True)
            t_skimage, expected = _time(reference, skimage_repeats)
            t_cpu, cpu_mask = _time(lambda: ours(data, init), repeats)
            row: dict[str, Any] = {
                "algorithm": name,
                "size": size,
                "iterations": iterations,
                "skimage_s": t_skimage,
                "torch_cpu_s": t_cpu,
                "cpu_identical": bool(np.array_equal(_as_numpy(cpu_mask), expected)),
                "cpu_speedup": t_skimage / t_cpu,
            }
            if cuda:
                device_data = torch.from_numpy(np.ascontiguousarray(data)).cuda()
                device_init = torch.from_numpy(init).cuda()
                t_gpu, gpu_mask = _time(lambda: ours(device_data, device_init), repeats, torch.cuda.synchronize)
                row.update(
                    torch_cuda_s=t_gpu,
                    cuda_identical=bool(np.array_equal(_as_numpy(gpu_mask), expected)),
                    cuda_speedup=t_skimage / t_gpu,
                )
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--iterations", type=int, default=4, help="snake iterations per call (default 4)")
    parser.add_argument("--repeats", type=int, default=3, help="timed torch calls; the best counts (default 3)")
    parser.add_argument("--skimage-repeats", type=int, default=1, help="timed scikit-image calls (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}" + (f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "")
    )
    rows = run(args.sizes, args.iterations, args.repeats, args.skimage_repeats)
    print(f"machine: {machine}; torch {torch.__version__}")
    header = f"{'algorithm':<10} {'size':>5} {'skimage s':>10} {'torch cpu s':>12} {'cuda s':>8} {'identical':>10}"
    print(header)
    for row in rows:
        cuda_s = f"{row['torch_cuda_s']:.4f}" if "torch_cuda_s" in row else "-"
        same = row["cpu_identical"] and row.get("cuda_identical", True)
        print(
            f"{row['algorithm']:<10} {row['size']:>4}³ {row['skimage_s']:>10.3f} {row['torch_cpu_s']:>12.4f} "
            f"{cuda_s:>8} {str(same):>10}"
        )
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    print("ratios (scikit-image time / torch time; targets: CPU >= 10x, CUDA >= 100x):")
    for row in rows:
        line = f"  {row['algorithm']} {row['size']}³: CPU {row['cpu_speedup']:.1f}x"
        if "cuda_speedup" in row:
            line += f", CUDA {row['cuda_speedup']:.1f}x"
        print(line)
    identical = all(row["cpu_identical"] and row.get("cuda_identical", True) for row in rows)
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
