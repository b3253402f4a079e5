"""The benchmark's settings and report (its measurements themselves are printed by running it, not tested)."""

import importlib.util

import nibabel as nib
import numpy as np

from livervae.paths import repo_root


def _module():
    spec = importlib.util.spec_from_file_location(
        "patch_vae_vs_unet", repo_root() / "benchmarks" / "patch_vae_vs_unet.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_settings_and_report_with_ratios_last(tmp_path):
    bench = _module()
    args = bench.parse_args(["--quick"])
    assert (args.pixdim, args.patch_size, args.stride, args.folds) == (3.0, 8, 8, [0, 2])
    results = []
    for model, seconds, peak in (("patch_vae", 10.0, 500.0), ("unet", 20.0, 1000.0)):
        folder = tmp_path / model
        folder.mkdir()
        (folder / "patches.csv").write_text("score,label\n0.9,1\n0.1,0\n")
        results.append(
            {
                "model": model,
                "fold": 0,
                "train_seconds": seconds,
                "engine_seconds": seconds / 2,
                "peak_rss_mib": peak,
                "rss_growth_mib": peak / 10,
                "peak_cuda_mib": None,
                "epochs": 3,
                "vae_epochs": 2 if model == "patch_vae" else None,
                "auc": 1.0,
                "dice": None if model == "patch_vae" else 0.5,
                "eval_dir": str(folder),
            }
        )
    text = bench.report(results, ["patch_vae", "unet"], [0], "test machine")
    last = text.splitlines()[-1]
    assert last.startswith("ratio patch_vae / unet: peak RSS in training 0.50, RSS growth 0.50, training time 0.50")
    assert "(engines only 0.50), pooled AUC 1.00" in last and "2+3" in text


def _inference_module():
    spec = importlib.util.spec_from_file_location("inference_bench", repo_root() / "benchmarks" / "inference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_inference_benchmark_extends_the_ct_by_mirroring_and_reports_ratios_last(tmp_path, real_case):
    bench = _inference_module()
    assert bench.mirrored_slices(3, 8).tolist() == [0, 1, 2, 2, 1, 0, 0, 1]
    assert bench.mirrored_slices(119, 100).tolist() == list(range(100))
    source = nib.load(str(real_case / "nifti" / "ct.nii.gz"))
    extended = nib.load(str(bench.make_ct(real_case / "nifti" / "ct.nii.gz", 240, tmp_path / "ct.nii.gz")))
    assert extended.shape == (512, 512, 240) and np.allclose(extended.affine, source.affine)
    assert np.array_equal(extended.dataobj[:, :, 119], source.dataobj[:, :, 118])  # the mirror starts at the end
    rows = [
        {"method": "MONAI default sliding window", "model_load_s": 0.1, "end_to_end_s": 30.0, "inference_s": 24.0,
         "peak_rss_mib": 3000.0, "peak_cuda_mib": None},
        {"method": "LiverVAE two-stage", "model_load_s": 0.2, "end_to_end_s": 10.0, "inference_s": 6.0,
         "peak_rss_mib": 1000.0, "peak_cuda_mib": None},
    ]  # fmt: skip
    last = bench.report(rows, "test machine", (512, 512, 160), "cpu").splitlines()[-1]
    assert last.startswith("ratio MONAI default / LiverVAE: end to end 3.00x, inference 4.00x, peak RSS 3.00")
    assert "LiverVAE end to end 10.0 s vs target <= 60 s" in last


def _memory_module():
    spec = importlib.util.spec_from_file_location("memory_bench", repo_root() / "benchmarks" / "memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_memory_benchmark_puts_invertd_back_and_reports_targets_and_ratios_last(trained):
    from livervae.bundle import BundlePredictor

    bench = _memory_module()
    model = trained["tumour"]
    predictor = BundlePredictor(model_path=model, device="cpu", overrides=bench.invertd_override())
    assert type(predictor.postprocessing.transforms[-1]).__name__ == "Invertd"
    plain = BundlePredictor(model_path=model, device="cpu")
    assert type(plain.postprocessing.transforms[-1]).__name__ == "SourceGridLabeld"
    rows = [
        {"slices": 1000, "source_grid_step": "SourceGridLabeld", "seconds": 40.0, "peak_rss_gib": 5.0,
         "peak_cuda_gib": None, "liver_ml": 1.0},
        {"slices": 1000, "source_grid_step": "Invertd", "seconds": 60.0, "peak_rss_gib": 16.0,
         "peak_cuda_gib": None, "liver_ml": 1.0},
    ]  # fmt: skip
    lines = bench.report(rows, "test machine", "cpu").splitlines()
    assert lines[-2] == "1000 slices: peak RSS 5.00 GiB (target <= 12 GiB)"
    assert lines[-1] == "ratio peak RSS SourceGridLabeld / Invertd by slices: 1000: 0.31"


def test_training_benchmark_reports_epoch_and_naive_ratios_last(tmp_path):
    spec = importlib.util.spec_from_file_location("training_bench", repo_root() / "benchmarks" / "training.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = {
        "bundle": "liver_ct_segmentation", "preset": "cpu", "device": "cpu", "isolated_step_s": 2.0,
        "optimised_epoch_s": 10.0, "optimised_iterations": 4, "naive_epoch_s": 20.0, "naive_iterations": 4,
    }  # fmt: skip
    last = bench.report(result, "test machine").splitlines()[-1]
    assert last == "ratio optimised epoch / isolated step 0.80 (target >= 0.90), optimised / naive 2.00"


def test_bench_report_gathers_each_table_and_its_ratio_lines():
    spec = importlib.util.spec_from_file_location("run_all", repo_root() / "benchmarks" / "run_all.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    printed = (
        "machine: x\nalgorithm size\nratios (scikit-image time / torch time; targets: CPU >= 10x):\n  cv: CPU 20x\n"
    )
    report = {
        "machine": "test machine",
        "date": "2026-12-01",
        "benchmarks": {
            "active_contour": {
                "returncode": 0,
                "log": "a.log",
                "ratios": bench.ratio_lines(printed),
                "result": {"machine": "x", "rows": [{"size": 128, "cpu_speedup": 20.87654, "torch_cuda_s": None}]},
            },
            "training": {"returncode": 1, "log": "t.log", "ratios": []},
        },
    }
    text = bench.render(report)
    assert "Machine: test machine. Date: 2026-12-01." in text
    assert "| size | cpu_speedup | torch_cuda_s |\n|---|---|---|\n| 128 | 20.88 |  |" in text
    assert "- ratios (scikit-image time / torch time; targets: CPU >= 10x):\n- cv: CPU 20x" in text
    assert "iterations" not in text
    assert "Failed (exit 1); see `t.log`." in text
