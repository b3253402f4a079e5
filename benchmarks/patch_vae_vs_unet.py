"""Patch VAE vs. U-Net baselines on the same leave-one-patient-out folds, in one run, at the bundles' defaults.

Cohort (`prepare_data`): phantoms from the project's generator drawn in index order and kept only when they hold
enough tumour patches on the bundles' patch grid (`livervae.data.patch_cohort.build_patch_cohort`: multifocal
lesions of several sizes, portal and hepatic vessels), so every fold's AUC is defined, plus the shipped real CT
(3D-IRCADb-01 #17) as its own fold. Settings are the bundles' own (train.json) unless overridden here; `--quick`
is a small CPU variant.

For each model (patch VAE, 2D U-Net, ResNet-50-encoder U-Net) and each fold, a fresh child process trains the
bundle (`livervae.bundle.train`, the same configs as `make train`) to the bundle's stopping rule (early stopping on
the validation patient's patch AUC), then scores the held-out patient (`livervae.bundle.evaluate`). Printed per
model: the one memory measure, peak training memory (`machine.PeakMemory` reset when a trainer starts, after the
shared data loading and caching: on the CPU the peak RSS above the RSS at that moment, on a GPU peak CUDA memory),
training time (`train s`: the whole `train()` call including loading and caching the same volumes and the patch
VAE's pre-training; `engine s`: the trainers' runs only), epochs, the AUC per fold, how many folds reach 0.90,
the AUC pooled over the folds' patches, and the false-positive rate on vessel-only patches (tumour-free patches
with >= 10 % of pixels at the vessel level, 150 HU after the liver referencing) beside the rate on the other
tumour-free patches, both at the threshold that finds 80 % of each fold's tumour patches; last, the ratios
patch VAE / U-Net and the targets. Peaks are maxima over folds, times are sums.

    python benchmarks/patch_vae_vs_unet.py                               # bundle defaults, every fold
    python benchmarks/patch_vae_vs_unet.py --quick                       # CPU: small phantoms at 3 mm
    python benchmarks/patch_vae_vs_unet.py --device cuda
    python benchmarks/patch_vae_vs_unet.py --report runs/a/results.json runs/b/results.json   # saved runs, one table
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
from livervae.io.atomic import write_json_atomic  # noqa: E402

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
        from livervae.crossval import read_patch_rows
        from livervae.metrics.patch_auc import vessel_false_positives

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
                "vessels": vessel_false_positives(read_patch_rows(result["output_dir"])),
                "eval_dir": result["output_dir"],
            }
        )
    except BaseException as exc:  # report, do not hang the parent
        queue.put({"model": model, "fold": fold, "error": f"{type(exc).__name__}: {exc}"})
        raise


def bundle_defaults() -> dict[str, Any]:
    """The patch grid and training settings both patch bundles share, read from the patch VAE's train.json."""
    from monai.bundle import ConfigParser

    from livervae.bundle import bundle_root

    parser = ConfigParser()
    parser.read_config(str(bundle_root(PATCH_VAE) / "configs" / "train.json"))
    keys = ("pixdim", "patch_size", "patch_stride", "min_liver_fraction", "tumor_threshold", "crop_margin")
    return {key: parser[key] for key in keys}


def prepare_data(
    work: Path, phantoms: int, preset: str, real: bool, grid_settings: dict[str, Any], min_tumor_patches: int
) -> list[str]:
    """The benchmark cohort under `work` (reused when present): the study phantoms and the shipped real case."""
    from dataclasses import replace

    from livervae.data.patch_cohort import STUDY_CONFIG, build_patch_cohort
    from livervae.data.patches import PatchGrid
    from livervae.data.phantom import PhantomConfig
    from livervae.data.preprocess import preprocess
    from livervae.paths import real_case_dir

    small = PhantomConfig.small()
    config = (
        STUDY_CONFIG
        if preset == "default"
        else replace(
            STUDY_CONFIG, inplane_spacing_mm=small.inplane_spacing_mm, slice_thickness_mm=small.slice_thickness_mm
        )
    )
    grid = PatchGrid(
        grid_settings["patch_size"],
        grid_settings["patch_stride"],
        grid_settings["min_liver_fraction"],
        grid_settings["tumor_threshold"],
    )
    ph = work / f"patch_cohort_{preset}_{phantoms}"
    record = build_patch_cohort(
        ph,
        phantoms,
        grid,
        float(grid_settings["pixdim"][0]),
        int(grid_settings["crop_margin"]),
        min_tumor_patches,
        config=config,
    )
    print(f"phantoms kept (tumour patches): {record['kept']}; skipped: {record['skipped']}", flush=True)
    folders = [str(ph)]
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


def _memory(row: dict[str, Any]) -> float:
    """The one memory measure: peak CUDA memory on a GPU, else the peak RSS above the RSS when training began."""
    return row["peak_cuda_mib"] if row["peak_cuda_mib"] is not None else row["rss_growth_mib"]


def _rate(hits: int, total: int) -> str:
    return "n/a" if total == 0 else f"{hits / total:.3f}"


def summarise_model(rows: list[dict[str, Any]], folds: list[int]) -> dict[str, Any]:
    """Per model: memory (max over folds), times (sums), AUC per fold, folds >= 0.90, pooled AUC, vessel rates."""
    from livervae.crossval import pooled_auc

    by_fold = {r["fold"]: r for r in rows}
    aucs = [by_fold[f]["auc"] if f in by_fold else None for f in folds]
    vessels = [r["vessels"] for r in rows]
    dice = [r["dice"] for r in rows if r["dice"] is not None]
    return {
        "memory": max(_memory(r) for r in rows),
        "seconds": sum(r["train_seconds"] for r in rows),
        "engine": sum(r["engine_seconds"] for r in rows),
        "aucs": aucs,
        "folds_090": sum(a is not None and a >= 0.90 for a in aucs),
        "folds_defined": sum(a is not None for a in aucs),
        "pooled": pooled_auc([r["eval_dir"] for r in rows]),
        "vessel_fp": _rate(
            sum(v["vessel_false_positives"] for v in vessels), sum(v["vessel_patches"] for v in vessels)
        ),
        "other_fp": _rate(sum(v["other_false_positives"] for v in vessels), sum(v["other_patches"] for v in vessels)),
        "vessel_patches": sum(v["vessel_patches"] for v in vessels),
        "dice": sum(dice) / len(dice) if dice else None,
    }


def report(results: list[dict[str, Any]], models: list[str], folds: list[int], machine: str) -> str:
    """The per-model table, the ratios and the targets, as text."""
    cuda = bool(results) and results[0].get("peak_cuda_mib") is not None
    lines = [f"machine: {machine}", ""]
    header = f"{'model':<14} {'train MiB':>9} {'train s':>8} {'engine s':>8} {'epochs':>10} "
    header += " ".join(f"{'AUC f' + str(f):>8}" for f in folds)
    header += f" {'>=0.90':>6} {'pooled':>7} {'vessel FP':>9} {'other FP':>8} {'Dice':>6}"
    lines.append(header)
    summary: dict[str, dict[str, Any]] = {}
    for model in models:
        rows = [r for r in results if r["model"] == model and "error" not in r]
        if not rows:
            lines.append(f"{model:<14} failed: {[r.get('error') for r in results if r['model'] == model]}")
            continue
        summary[model] = m = summarise_model(rows, folds)
        epochs = "/".join(str(r["epochs"]) for r in rows)
        if model == "patch_vae":
            epochs = "/".join(f"{r['vae_epochs']}+{r['epochs']}" for r in rows)
        cells = " ".join(f"{'n/a' if a is None else f'{a:.3f}':>8}" for a in m["aucs"])
        pooled = "n/a" if m["pooled"] is None else f"{m['pooled']:.3f}"
        dice = "-" if m["dice"] is None else f"{m['dice']:.3f}"
        lines.append(
            f"{model:<14} {m['memory']:>9.0f} {m['seconds']:>8.1f} {m['engine']:>8.1f} {epochs:>10} {cells} "
            f"{str(m['folds_090']) + '/' + str(m['folds_defined']):>6} {pooled:>7} {m['vessel_fp']:>9} "
            f"{m['other_fp']:>8} {dice:>6}"
        )
    memory = "peak CUDA memory" if cuda else "peak training memory (RSS above its start)"
    lines.append("")
    lines.append(
        f"memory: {memory}; vessel FP: false-positive rate on "
        f"{summary.get('patch_vae', {}).get('vessel_patches', 0)} vessel-only patches at 80 % sensitivity"
    )
    vae = summary.get("patch_vae")
    for base in ("unet", "resnet50_unet"):
        if vae and base in summary:
            b = summary[base]
            lines.append(
                f"ratio patch_vae / {base}: memory {_ratio(vae['memory'], b['memory'])}, "
                f"training time {_ratio(vae['seconds'], b['seconds'])} "
                f"(engines only {_ratio(vae['engine'], b['engine'])}), "
                f"pooled AUC {_ratio(vae['pooled'], b['pooled'])}"
            )
    if vae and "unet" in summary:
        b = summary["unet"]
        memory_ratio = vae["memory"] / b["memory"] if b["memory"] else float("inf")
        time_ratio = vae["seconds"] / b["seconds"] if b["seconds"] else float("inf")
        wanted = min(5, vae["folds_defined"])
        lines.append(
            f"targets: AUC >= 0.90 on >= 5 folds: {vae['folds_090']} of {vae['folds_defined']} "
            f"({'met' if vae['folds_090'] >= 5 and wanted == 5 else 'not met'}); "
            f"memory <= 0.5 x unet: {memory_ratio:.2f} ({'met' if memory_ratio <= 0.5 else 'not met'}); "
            f"time <= 0.67 x unet: {time_ratio:.2f} ({'met' if time_ratio <= 2 / 3 else 'not met'})"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", nargs="+", help="dataset folder(s) (default: prepare the study cohort + the real case)"
    )
    parser.add_argument("--work", type=Path, default=Path("runs/bench_patch_vae"), help="data and run folder")
    parser.add_argument("--phantoms", type=int, default=6, help="phantom patients to keep (default 6)")
    parser.add_argument("--phantom-preset", choices=("default", "small"), default="default")
    parser.add_argument(
        "--min-tumor-patches", type=int, default=20, help="tumour patches a phantom needs to join the cohort"
    )
    parser.add_argument("--no-real", action="store_true", help="do not add the shipped real CT to the cohort")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--folds", type=int, nargs="+", help="folds (held-out patients) to run (default: all)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per run (default 1)")
    group = parser.add_argument_group("overrides of the bundles' defaults (default: the bundles' train.json)")
    group.add_argument("--epochs", type=int, help="max classifier / segmentation epochs")
    group.add_argument("--vae-epochs", type=int, help="patch VAE pre-training epochs")
    group.add_argument("--patience", type=int, help="early-stopping patience in epochs")
    group.add_argument("--pixdim", type=float, help="in-plane spacing in mm")
    group.add_argument("--patch-size", type=int)
    group.add_argument("--stride", type=int, help="patch stride")
    group.add_argument("--slice-size", type=int, help="U-Net training slice side")
    group.add_argument("--unet-channels", type=int, nargs="+")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CPU settings: 6 small phantoms (3 mm) + the real case at 3 mm, 8 x 8 patches (24 mm), stride 8, "
        "64 x 64 slices, 4 + 12 epochs, patience 4, folds 0 and 2",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.phantom_preset, args.pixdim, args.patch_size, args.stride, args.slice_size = "small", 3.0, 8, 8, 64
        args.vae_epochs, args.epochs, args.patience = 4, 12, 4
        args.unet_channels = [16, 32, 64, 128]
        args.folds = args.folds or [0, 2]
    return args


def overrides(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The settings both bundles share, the patch VAE's and the U-Nets', from the arguments given (none: the
    bundles' defaults)."""
    common: dict[str, Any] = {"val_interval": 1}
    if args.pixdim is not None:
        common["pixdim"] = [args.pixdim, args.pixdim]
    if args.patch_size is not None:
        common["patch_size"] = args.patch_size
        common["crop_margin"] = max(args.patch_size, 8)
    if args.stride is not None:
        common["patch_stride"] = args.stride
    if args.patience is not None:
        common["early_stop_patience"] = args.patience
    vae = {} if args.vae_epochs is None else {"vae_epochs": args.vae_epochs}
    unet: dict[str, Any] = {}
    if args.slice_size is not None:
        unet["slice_size"] = [args.slice_size, args.slice_size]
    if args.unet_channels is not None:
        unet["channels"] = args.unet_channels
    return common, vae, unet


def report_saved(paths: list[Path]) -> str:
    """The table of one or more saved results.json files together (e.g. a run interrupted and one that added a
    model on the same cohort and folds); refuses files measured on different cohorts or settings."""
    runs = [json.loads(Path(p).read_text(encoding="utf-8")) for p in paths]

    def identity(run: dict[str, Any]) -> tuple[Any, ...]:
        return run["patients"], run["settings"]["grid"], run["settings"]["common"]

    first = runs[0]
    for path, run in zip(paths[1:], runs[1:]):
        if identity(run) != identity(first):
            raise SystemExit(f"{path}: another cohort, patch grid or shared settings than {paths[0]}")
    results = [r for run in runs for r in run["results"]]
    models = [m for m in MODELS if any(r["model"] == m for r in results)]
    folds = sorted({r["fold"] for r in results})
    return report(results, models, folds, first["machine"])


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--report"]:
        print(report_saved([Path(p) for p in argv[1:]]))
        return 0
    args = parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    common, vae, unet = overrides(args)
    grid_settings = {**bundle_defaults(), **{k: v for k, v in common.items() if k != "val_interval"}}
    if args.data:
        data = args.data
    else:
        data = prepare_data(
            args.work, args.phantoms, args.phantom_preset, not args.no_real, grid_settings, args.min_tumor_patches
        )
    from livervae.data.cohort import cohort_patients, load_cohort

    patients = cohort_patients(load_cohort(data))
    folds = args.folds if args.folds is not None else list(range(len(patients)))
    settings = {
        "data": data,
        "device": args.device,
        "threads": args.threads,
        "epochs": args.epochs,
        "common": common,
        "vae": vae,
        "unet": unet,
        "grid": grid_settings,
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
            # after every run, so an interrupted benchmark keeps what it measured (`--report` prints it)
            saved = {"settings": settings, "patients": patients, "folds": folds, "machine": machine}
            write_json_atomic(args.work / "results.json", {**saved, "models": args.models, "results": results})
    text = report(results, args.models, folds, machine)
    write_json_atomic(args.work / "results.json", {**saved, "models": args.models, "results": results, "report": text})
    print()
    print(text)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
