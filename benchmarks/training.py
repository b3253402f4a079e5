"""Training throughput: the isolated train step vs a full epoch, and LiverVAE's data path vs a naive one, in one run.

For a segmentation bundle's `train.json` (stage 1 by default) on a phantom cohort it measures, on one device:

- isolated step: the trainer's own iteration (forward, loss with the VAE term, backward, optimizer step, AMP on
  a GPU) repeated on one batch already in memory, i.e. the ceiling an epoch could reach;
- optimised epoch: the bundle as shipped (CacheDataset with the deterministic transforms cached, random
  transforms per iteration, ThreadDataLoader), timed over its last epoch (no validation inside the timed epochs);
- naive epoch: the same config with `cache_rate` 0 and MONAI's plain `DataLoader` (no worker), so every
  iteration reads and resamples its NIfTI files again.

It prints iterations per second for each and, last, the ratios: optimised epoch / isolated step (target ≥ 0.90)
and optimised / naive.

    python benchmarks/training.py [--bundle liver_ct_segmentation] [--data <dataset>] [--phantoms 8]
        [--phantom-preset default] [--preset cpu] [--device cpu] [--epochs 2] [--steps 5] [--json out]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling scripts, not a package
from machine import describe  # noqa: E402

TARGET_EPOCH_FRACTION = 0.90


def build_trainer(bundle: str, data: Path, out: Path, device: str, preset: str, epochs: int, naive: bool) -> Any:
    """The bundle's `train#trainer`, parsed with `preset`, no validation or resume, writing under `out`."""
    import torch
    from monai.bundle import ConfigParser

    from livervae.bundle import bundle_root, preset_overrides

    root = bundle_root(bundle)
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "train.json"))
    parser.read_meta(str(root / "configs" / "metadata.json"))
    overrides: dict[str, Any] = {
        "bundle_root": str(root),
        "dataset_dir": str(data),
        "output_dir": str(out),
        "ckpt_dir": str(out / "models"),
        "pretrained_model": "",
        "max_epochs": epochs,
        "val_interval": 10**6,  # keep validation out of the timed epochs
        "device": f"$torch.device('{device}')",
        **preset_overrides(bundle, preset),
    }
    if naive:
        overrides.update({"cache_rate": 0.0, "train#dataloader#_target_": "monai.data.DataLoader"})
    for key, value in overrides.items():
        parser[key] = value
    torch.manual_seed(0)
    return parser.get_parsed_content("train#trainer")


def time_epochs(trainer: Any) -> tuple[float, int]:
    """Run `trainer`; return the last epoch's seconds (its iterations only) and its iteration count.

    Timed from the epoch's start to its last iteration, so end-of-epoch handlers (validation, checkpoints) stay out.
    """
    from ignite.engine import Events

    marks: dict[str, float] = {}
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda _: marks.update(start=time.perf_counter()))
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda _: marks.update(end=time.perf_counter()))
    trainer.run()
    return marks["end"] - marks["start"], int(trainer.state.epoch_length)


def time_isolated_step(trainer: Any, steps: int, device: str) -> float:
    """Seconds per call of the trainer's iteration on one batch already in memory (after one warm-up)."""
    import torch

    batch = next(iter(list(trainer.data_loader)))  # drain the loader: no prefetch thread runs while timing

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    trainer._process_function(trainer, batch)
    sync()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        trainer._process_function(trainer, batch)
        sync()
        times.append(time.perf_counter() - start)
    print("isolated steps (s): " + ", ".join(f"{t:.2f}" for t in times), flush=True)
    return sum(times) / steps


def report(result: dict[str, Any], machine: str) -> str:
    """The throughput table, then the ratios (last line)."""
    step = 1.0 / result["isolated_step_s"]
    optimised = result["optimised_iterations"] / result["optimised_epoch_s"]
    naive = result["naive_iterations"] / result["naive_epoch_s"]
    lines = [
        f"machine: {machine}; bundle {result['bundle']}, preset {result['preset']}, device {result['device']}",
        f"{'path':<38} {'seconds':>9} {'iterations':>11} {'it/s':>7}",
        f"{'isolated step (one batch in memory)':<38} {result['isolated_step_s']:>9.3f} {1:>11} {step:>7.3f}",
        f"{'optimised epoch (CacheDataset, threads)':<38} {result['optimised_epoch_s']:>9.2f} "
        f"{result['optimised_iterations']:>11} {optimised:>7.3f}",
        f"{'naive epoch (no cache, DataLoader)':<38} {result['naive_epoch_s']:>9.2f} "
        f"{result['naive_iterations']:>11} {naive:>7.3f}",
        f"ratio optimised epoch / isolated step {optimised / step:.2f} (target >= {TARGET_EPOCH_FRACTION:.2f}), "
        f"optimised / naive {optimised / naive:.2f}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from livervae.bundle import LIVER_BUNDLE

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default=LIVER_BUNDLE, help="a SegResNetVAE bundle (default stage 1)")
    parser.add_argument("--data", type=Path, default=None, help="a prepared dataset (default: phantoms, made here)")
    parser.add_argument("--phantoms", type=int, default=8, help="phantoms made without --data (default 8, >= 2)")
    parser.add_argument(
        "--phantom-preset", choices=("default", "small"), default="default", help="their phantom grid (default)"
    )
    parser.add_argument("--preset", default="cpu", help="bundle preset (default cpu)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per data path; the last one is timed")
    parser.add_argument("--steps", type=int, default=5, help="timed isolated steps (default 5)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON")
    args = parser.parse_args(argv)
    machine = describe(gpu=args.device.startswith("cuda"))
    work = Path(tempfile.mkdtemp(prefix="livervae_training_"))
    try:
        data = args.data
        if data is None:
            from livervae.data.formats import SourceOptions
            from livervae.data.preprocess import preprocess

            data = work / "phantoms"
            print(f"generating {args.phantoms} phantoms ...", flush=True)
            options = SourceOptions(phantom_n=args.phantoms, phantom_seed=0, phantom_preset=args.phantom_preset)
            preprocess("phantom", None, data, options, n_folds=min(4, args.phantoms))
        settings = (args.device, args.preset, args.epochs)
        trainer = build_trainer(args.bundle, data, work / "optimised", *settings, naive=False)
        # Before the trainer runs: Ignite's engine after run() is not a fair place to time a lone step.
        print("isolated step ...", flush=True)
        step_s = time_isolated_step(trainer, args.steps, args.device)
        print("optimised data path ...", flush=True)
        optimised_s, optimised_n = time_epochs(trainer)
        print("naive data path ...", flush=True)
        naive_s, naive_n = time_epochs(build_trainer(args.bundle, data, work / "naive", *settings, naive=True))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "bundle": args.bundle,
        "preset": args.preset,
        "device": args.device,
        "isolated_step_s": round(step_s, 4),
        "optimised_epoch_s": round(optimised_s, 3),
        "optimised_iterations": optimised_n,
        "naive_epoch_s": round(naive_s, 3),
        "naive_iterations": naive_n,
    }
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, **result}, indent=2))
    print(report(result, machine))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
