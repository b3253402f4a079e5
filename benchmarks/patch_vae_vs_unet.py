"""Patch VAE vs. U-Net baselines on the same leave-one-patient-out folds, in one run.

For each model (patch VAE, 2D U-Net, ResNet-50-encoder U-Net) and each fold, a fresh child process trains the
bundle (`livervae.bundle.train`, the same configs as `make train`) to the same stopping rule (at most `--epochs`
epochs, early stopping after `--patience` validations without a better validation-patient patch AUC, validating
every epoch), then scores the held-out patient (`livervae.bundle.evaluate`). Printed per model: peak memory
while the training engines run (`machine.PeakMemory`, reset when a trainer starts: peak RSS on the CPU, peak CUDA
memory on a GPU), the RSS growth over the RSS at the trainers' start, training time
(`train s`: the whole `train()` call including loading and caching the same volumes; `engine s`: the trainers'
runs only; the patch VAE's include its pre-training), epochs run, the AUC per fold and pooled over the folds'
patches; and, last, the ratios patch VAE / U-Net. Peaks are maxima over folds, times are sums.

    python benchmarks/patch_vae_vs_unet.py --quick                      # CPU: small phantoms + the real case
    python benchmarks/patch_vae_vs_unet.py --data DS1 DS2 --device cuda --folds 0 1 2 3 4 5 6
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling scripts, not a package
from machine import PeakMemory, rss_mib  # noqa: E402

from livervae.bundle_names import PATCH_VAE_BUNDLE, UNET_BUNDLE  # noqa: E402

MODELS = ("patch_vae", "unet", "resnet50_unet")
PATCH_VAE = PATCH_VAE_BUNDLE
UNET = UNET_BUNDLE


def _instrument_trainers(marks: dict[str, Any], peak: PeakMemory) -> None:
    """Measure only the engines' training runs: reset the peak memory when a SupervisedTrainer starts (after the
    bundle has loaded, cached and cut its data, which both model families share) and read it when it ends."""
    from monai.engines import SupervisedTrainer

    run = SupervisedTrainer.run

    def measured(self, *args, **kwargs):
        marks["reset"] = peak.reset() and marks.get("reset", True)
        marks["start_rss"] = min(marks.get("start_rss", float("inf")), rss_mib())
        start = time.perf_counter()
        try:
            return run(self, *args, **kwargs)
        finally:
            marks["engine_seconds"] = marks.get("engine_seconds", 0.0) + time.perf_counter() - start
            marks["peak_rss"] = max(marks.get("peak_rss", 0.0), peak.peak_rss_mib())
            cuda_mib = peak.peak_cuda_mib()
            if cuda_mib is not None:
                marks["peak_cuda"] = max(marks.get("peak_cuda", 0.0), cuda_mib)

    SupervisedTrainer.run = measured


def _epochs(folder: Path) -> int:
    found = [int(p.name.split("=")[1].split(".")[0]) for p in folder.glob("checkpoint_epoch=*.pt")]
    return max(found, default=0)


def _child(model: str, fold: int, args: dict[str, Any], out: str, queue: mp.Queue) -> None:
    """Train and evaluate one (model, fold) in this process; put its measurements on `queue`."""
    try:
        import torch

        torch.set_num_threads(args["threads"])
        from livervae.bundle import evaluate, train

        bundle = PATCH_VAE if model == "patch_vae" else UNET
        overrides = dict(args["common"])
        overrides.update(args["vae"] if model == "patch_vae" else {**args["unet"], "model": model})
        overrides.update({"ckpt_dir": f"{out}/models", "resume": False, "num_workers": 0})
        peak = PeakMemory(args["device"])
        marks: dict[str, Any] = {}
        _instrument_trainers(marks, peak)
        start = time.perf_counter()
        model_path = train(
            bundle, args["data"], fold, args["epochs"], args["device"], f"{out}/train", "default", overrides
        )
        seconds = time.perf_counter() - start
        process_peak = peak.process_peak_rss_mib()  # across the resets
        peak_rss = marks["peak_rss"] if marks.get("reset") else process_peak
        peak_cuda = marks.get("peak_cuda") if peak.cuda else None
        result = evaluate(
            bundle, args["data"], fold, "val", f"{out}/eval", args["device"], {"model_path": str(model_path)}
        )
        checkpoints = Path(out) / "train" / "checkpoints"
        epochs = _epochs(checkpoints / "classifier") if model == "patch_vae" else _epochs(checkpoints)
        queue.put(
            {
                "model": model,
                "fold": fold,
                "train_seconds": seconds,
                "engine_seconds": marks["engine_seconds"],
                "peak_rss_mib": peak_rss,
                "rss_growth_mib": peak_rss - marks["start_rss"],
                "process_peak_rss_mib": process_peak,
                "peak_reset": bool(marks.get("reset")),
                "peak_cuda_mib": peak_cuda,
                "epochs": epochs,
                "vae_epochs": _epochs(checkpoints / "vae") if model == "patch_vae" else None,
                "auc": result["summary"]["auc_pooled"],
                "tumor_patches": result["summary"]["tumor_patches"],
                "patches": result["summary"]["patches"],
                "dice": result["summary"].get("tumor_dice_mean"),
                "eval_dir": result["output_dir"],
            }
        )
    except BaseException as exc:  # report, do not hang the parent
        queue.put({"model": model, "fold": fold, "error": f"{type(exc).__name__}: {exc}"})
        raise


def prepare_data(work: Path, phantoms: int, preset: str, real: bool) -> list[str]:
    """The benchmark cohort under `work` (reused when present): a phantom cohort and the shipped real case."""
    from livervae.data.formats import SourceOptions
    from livervae.data.preprocess import preprocess
    from livervae.paths import real_case_dir

    folders = []
    ph = work / f"phantoms_{preset}_{phantoms}"
    if not (ph / "datalist.json").is_file():
        preprocess("phantom", None, ph, SourceOptions(phantom_n=phantoms, phantom_preset=preset), n_folds=1)
    folders.append(str(ph))
    if real:
        source = real_case_dir()
        if source.is_dir():
            ircadb = work / "ircadb17"
            if not (ircadb / "datalist.json").is_file():
                preprocess("ircadb", source, ircadb, n_folds=1)
            folders.append(str(ircadb))
        else:
            print(f"note: {source} not found; benchmarking on phantoms only", file=sys.stderr)
    return folders


def _ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def report(results: list[dict[str, Any]], models: list[str], folds: list[int], machine: str) -> str:
    """The per-model table and the ratios, as text."""
    from livervae.crossval import pooled_auc

    lines = [f"machine: {machine}", ""]
    header = f"{'model':<14} {'peak MiB':>9} {'growth MiB':>10} {'train s':>8} {'engine s':>8} {'epochs':>10} "
    header += " ".join(f"{'AUC f' + str(f):>8}" for f in folds) + f" {'pooled':>7} {'Dice':>6}"
    lines.append(header)
    summary: dict[str, dict[str, Any]] = {}
    for model in models:
        rows = [r for r in results if r["model"] == model and "error" not in r]
        if not rows:
            lines.append(f"{model:<14} failed: {[r.get('error') for r in results if r['model'] == model]}")
            continue
        gpu = rows[0]["peak_cuda_mib"] is not None
        peak = max(r["peak_cuda_mib"] if gpu else r["peak_rss_mib"] for r in rows)
        growth = max(r["rss_growth_mib"] for r in rows)
        seconds = sum(r["train_seconds"] for r in rows)
        engine = sum(r["engine_seconds"] for r in rows)
        epochs = "/".join(str(r["epochs"]) for r in rows)
        if model == "patch_vae":
            epochs = "/".join(f"{r['vae_epochs']}+{r['epochs']}" for r in rows)
        by_fold = {r["fold"]: r for r in rows}
        aucs = [by_fold[f]["auc"] if f in by_fold else None for f in folds]
        pooled = pooled_auc([r["eval_dir"] for r in rows])
        dice = [r["dice"] for r in rows if r["dice"] is not None]
        summary[model] = {"peak": peak, "seconds": seconds, "engine": engine, "pooled": pooled, "growth": growth}
        cells = " ".join(f"{'n/a' if a is None else f'{a:.3f}':>8}" for a in aucs)
        dice_text = f"{sum(dice) / len(dice):.3f}" if dice else "-"
        pooled_text = "n/a" if pooled is None else f"{pooled:.3f}"
        lines.append(
            f"{model:<14} {peak:>9.0f} {growth:>10.0f} {seconds:>8.1f} {engine:>8.1f} {epochs:>10} {cells} "
            f"{pooled_text:>7} {dice_text:>6}"
        )
    cuda = bool(results) and results[0].get("peak_cuda_mib") is not None
    memory = "peak CUDA memory" if cuda else "peak RSS in training"
    lines.append("")
    vae = summary.get("patch_vae")
    for base in ("unet", "resnet50_unet"):
        if vae and base in summary:
            b = summary[base]
            lines.append(
                f"ratio patch_vae / {base}: {memory} {_ratio(vae['peak'], b['peak'])}, "
                f"RSS growth {_ratio(vae['growth'], b['growth'])}, "
                f"training time {_ratio(vae['seconds'], b['seconds'])} "
                f"(engines only {_ratio(vae['engine'], b['engine'])}), "
                f"pooled AUC {_ratio(vae['pooled'], b['pooled'])}"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", help="dataset folder(s) (default: prepare phantoms + the real case)")
    parser.add_argument("--work", type=Path, default=Path("runs/bench_patch_vae"), help="data and run folder")
    parser.add_argument("--phantoms", type=int, default=6, help="phantom patients to prepare (default 6)")
    parser.add_argument("--phantom-preset", choices=("default", "small"), default="default")
    parser.add_argument("--no-real", action="store_true", help="do not add the shipped real CT to the cohort")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--folds", type=int, nargs="+", help="folds (held-out patients) to run (default: all)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per run (default 1)")
    parser.add_argument("--epochs", type=int, default=30, help="max classifier / segmentation epochs (default 30)")
    parser.add_argument("--vae-epochs", type=int, default=10, help="patch VAE pre-training epochs (default 10)")
    parser.add_argument("--patience", type=int, default=5, help="early-stopping patience in epochs (default 5)")
    parser.add_argument("--pixdim", type=float, default=1.5, help="in-plane spacing in mm (default 1.5)")
    parser.add_argument("--patch-size", type=int, default=16)
    parser.add_argument("--stride", type=int, default=16, help="patch stride (default 16: no overlap)")
    parser.add_argument("--slice-size", type=int, default=160, help="U-Net training slice side (default 160)")
    parser.add_argument("--unet-channels", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CPU settings: 6 small phantoms (3 mm) + the real case at 3 mm, 8 x 8 patches (24 mm), "
        "64 x 64 slices, 4 + 12 epochs, patience 4, folds 0 and 2",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.phantom_preset, args.pixdim, args.patch_size, args.stride, args.slice_size = "small", 3.0, 8, 8, 64
        args.vae_epochs, args.epochs, args.patience = 4, 12, 4
        args.unet_channels = [16, 32, 64, 128]
        args.folds = args.folds or [0, 2]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    data = args.data or prepare_data(args.work, args.phantoms, args.phantom_preset, not args.no_real)
    from livervae.data.cohort import cohort_patients, load_cohort

    patients = cohort_patients(load_cohort(data))
    folds = args.folds if args.folds is not None else list(range(len(patients)))
    common = {
        "pixdim": [args.pixdim, args.pixdim],
        "patch_size": args.patch_size,
        "patch_stride": args.stride,
        "crop_margin": max(args.patch_size, 8),
        "early_stop_patience": args.patience,
        "val_interval": 1,
    }
    settings = {
        "data": data,
        "device": args.device,
        "threads": args.threads,
        "epochs": args.epochs,
        "common": common,
        "vae": {"vae_epochs": args.vae_epochs},
        "unet": {"slice_size": [args.slice_size, args.slice_size], "channels": args.unet_channels},
    }
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), device {args.device}"
    if args.device.startswith("cuda"):
        import torch

        machine += f" ({torch.cuda.get_device_name(0)})"
    print(f"cohort: {len(patients)} patients {patients}; folds {folds} (held out: {[patients[f] for f in folds]})")
    print(f"settings: {json.dumps({k: v for k, v in settings.items() if k != 'data'})}", flush=True)
    context = mp.get_context("spawn")
    results = []
    for fold in folds:
        for model in args.models:
            out = args.work / "runs" / model / f"fold{fold}"
            queue = context.Queue()
            process = context.Process(target=_child, args=(model, fold, settings, str(out), queue))
            start = time.perf_counter()
            process.start()
            process.join()
            result = queue.get() if not queue.empty() else {"model": model, "fold": fold, "error": "no result"}
            results.append(result)
            state = result.get("error") or f"AUC {result['auc']}, {result['train_seconds']:.1f} s training"
            print(f"fold {fold} {model}: {state} ({time.perf_counter() - start:.0f} s in all)", flush=True)
    text = report(results, args.models, folds, machine)
    (args.work / "results.json").write_text(json.dumps({"settings": settings, "results": results}, indent=2))
    print()
    print(text)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
