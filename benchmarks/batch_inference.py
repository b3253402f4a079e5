"""Benchmark batch inference against a shell loop of single-case `livervae infer`, in one run on one folder.

The folder holds `--phantoms` small phantom CTs (the generator's small preset) and the real CT (3D-IRCADb-01
patient 17) cut to its central `--side`² voxels, all as NIfTI, written to a temporary folder and deleted after.
Three ways to segment all of it, each run as the user would run it (a fresh `livervae` process, model loading
and start-up included, no overlays):

- loop: one `livervae infer -i <case> -o <case>.nii.gz` process per case, one after the other;
- batch, 1 worker: `livervae infer -i <folder> -o <out>` (one model, reading and writing overlapped);
- batch, N workers: the same with `--workers N` (a local Dask cluster).

Printed per method: wall time, cases per hour, CPU use (the mean busy share of all cores over the run, from
psutil), then the ratios against the loop. Target on 2 cores: batch >= 1.5x the loop.

    python benchmarks/batch_inference.py [--phantoms 8] [--side 256] [--workers 2] [--device cpu] [--json out]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling scripts, not a package
from inference import make_ct  # noqa: E402
from machine import describe  # noqa: E402

TARGET_BATCH_SPEEDUP = 1.5  # issue: batch >= 1.5x the single-case loop on small CTs, 2 cores


def livervae_command() -> list[str]:
    """The `livervae` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("livervae")
    return [str(script)] if script.exists() else [sys.executable, "-m", "livervae.cli"]


def make_folder(folder: Path, phantoms: int, side: int) -> list[Path]:
    """Write the benchmark's cases into `folder`; return their paths."""
    from livervae.data.phantom import PhantomConfig, generate_case
    from livervae.io.nifti import save_nifti
    from livervae.paths import real_case_dir

    folder.mkdir(parents=True)
    cases = []
    for index in range(phantoms):
        image, _, _ = generate_case(index, 0, PhantomConfig.small())
        cases.append(save_nifti(image, folder / f"phantom{index:02d}.nii.gz"))
    real = real_case_dir() / "nifti" / "ct.nii.gz"
    cases.append(make_ct(real, int(_slices(real)), folder / "ircadb17_cut.nii.gz", side))
    return sorted(cases)


def _slices(path: Path) -> int:
    import nibabel as nib

    return int(nib.load(str(path)).shape[2])


def _timed(commands: list[list[str]]) -> dict[str, float]:
    """Run `commands` one after the other; wall seconds and mean CPU busy share (0-100 % of all cores)."""
    psutil.cpu_percent(interval=None)
    start = time.perf_counter()
    for command in commands:
        completed = subprocess.run(command, capture_output=True, text=True)
        if completed.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({completed.returncode}):\n{completed.stderr[-2000:]}")
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu_percent": psutil.cpu_percent(interval=None)}


def run(phantoms: int, side: int, workers: int, device: str, work: Path) -> list[dict[str, Any]]:
    """Segment the benchmark folder three ways; one row per method."""
    cases = make_folder(work / "in", phantoms, side)
    livervae = livervae_command()
    common = ["--no-overlay", "--device", device]
    methods = [
        (
            "loop of single-case infer",
            [[*livervae, "infer", "-i", str(c), "-o", str(work / "loop" / c.name), *common] for c in cases],
        ),
        ("batch, 1 worker", [[*livervae, "infer", "-i", str(work / "in"), "-o", str(work / "b1"), *common]]),
        (
            f"batch, {workers} workers",
            [
                [*livervae, "infer", "-i", str(work / "in"), "-o", str(work / f"b{workers}"), *common]
                + ["--workers", str(workers), "--no-progress"]
            ],
        ),
    ]
    rows = []
    for name, commands in methods:
        print(f"{name} ...", flush=True)
        measured = _timed(commands)
        rows.append(
            {
                "method": name,
                "cases": len(cases),
                "seconds": round(measured["seconds"], 2),
                "cases_per_hour": round(len(cases) * 3600 / measured["seconds"], 1),
                "cpu_percent": round(measured["cpu_percent"], 1),
            }
        )
    from livervae.batch import Manifest

    for folder in ("b1", f"b{workers}"):
        done = Manifest(work / folder).counts()["done"]
        if done != len(cases):
            raise RuntimeError(f"{folder}: {done} of {len(cases)} cases done (see its manifest)")
    return rows


def report(rows: list[dict[str, Any]], machine: str, device: str, side: int) -> str:
    """The table and, last, the ratios against the loop."""
    loop, single, many = rows
    lines = [
        f"machine: {machine}",
        f"{loop['cases']} cases (small phantoms + the real CT cut to {side}x{side}), device {device}",
        f"{'method':<28} {'seconds':>8} {'cases/h':>9} {'CPU %':>6}",
    ]
    lines += [
        f"{r['method']:<28} {r['seconds']:>8.1f} {r['cases_per_hour']:>9.0f} {r['cpu_percent']:>6.0f}" for r in rows
    ]
    lines.append(
        f"ratio batch/loop (cases per hour): 1 worker {single['cases_per_hour'] / loop['cases_per_hour']:.2f}x, "
        f"{many['method'].split(', ')[1]} {many['cases_per_hour'] / loop['cases_per_hour']:.2f}x; "
        f"{many['method'].split(', ')[1]} / 1 worker {many['cases_per_hour'] / single['cases_per_hour']:.2f}x "
        f"(target batch >= {TARGET_BATCH_SPEEDUP}x the loop on 2 cores)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phantoms", type=int, default=8, help="small phantom CTs in the folder (default 8)")
    parser.add_argument("--side", type=int, default=256, help="the real CT cut to SIDE x SIDE per slice (default 256)")
    parser.add_argument("--workers", type=int, default=2, help="workers of the Dask run (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    machine = describe(gpu=args.device.startswith("cuda"))
    work = Path(tempfile.mkdtemp(prefix="livervae_bench_batch_"))
    try:
        rows = run(args.phantoms, args.side, args.workers, args.device, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "device": args.device, "rows": rows}))
    print(report(rows, machine, args.device, args.side))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
