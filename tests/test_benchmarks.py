"""Every benchmark run on a tiny real input; its printed table, its ratio lines and its result files checked
against each other and against what a correct measurement must give. Plus known-answer tests of the shared
peak-memory measure and of the pure helpers."""

from __future__ import annotations

import csv
import importlib
import json
import mmap
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import nibabel as nib
import numpy as np
import pytest

from livervae.paths import repo_root

BENCHMARKS = repo_root() / "benchmarks"
# The scripts import their siblings by name (not a package), and the spawned workers of inference.py, memory.py
# and patch_vae_vs_unet.py import the script itself by name; both need the folder on sys.path (workers inherit it).
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))
RAM_MIB = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
TINY_CT = ["--slices", "16", "--side", "128"]  # the real CT cut to its central 128 x 128 x 16 voxels


def _bench(name: str) -> ModuleType:
    return importlib.import_module(name)


def _own_peak_mib() -> float | None:
    """This process's VmHWM in MiB, read here (not through the helper under test); None without /proc."""
    try:
        with open("/proc/self/status") as handle:
            return next(int(line.split()[1]) / 1024 for line in handle if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None


@pytest.fixture(scope="session")
def idle_python_mib() -> float:
    """Peak RSS of a python that does nothing (a lower bound for any benchmark's peak)."""
    code = "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))"
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True)
    return int(done.stdout) / 1024 if done.returncode == 0 else 1.0


@pytest.fixture(scope="module")
def ballast():
    """About 2 GiB written and held by this process while the benchmarks spawn their workers (allocated once for
    this module's tests); yields this process's peak RSS in MiB (None without /proc). A spawned worker's
    `ru_maxrss` starts at its parent's peak (fork + exec), so a measure built on it would report more than this;
    the shared measure (VmHWM) reports the worker's own."""
    block = np.ones(int(min(2048, RAM_MIB / 6)) * 2**20 // 8)
    yield _own_peak_mib()
    del block


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def assert_ratio(ratio: str, numerator: str, denominator: str, exact_numerator: bool = False) -> None:
    """`ratio` as printed is numerator / denominator as printed, allowing for each one's rounding (none for an
    `exact_numerator`, such as a count)."""
    half_r, half_n, half_d = (0.5 * 10 ** -_decimals(t) for t in (ratio, numerator, denominator))
    if exact_numerator:
        half_n = 0.0
    n, d = float(numerator), float(denominator)
    low, high = (n - half_n) / (d + half_d), (n + half_n) / max(d - half_d, 1e-12)
    assert low - half_r <= float(ratio) <= high + half_r, (ratio, numerator, denominator)


def assert_plausible_peak(peak_mib: float, idle_mib: float, parent_peak_mib: float | None = None) -> None:
    """More than an idle python, less than the machine's RAM and (for a spawned worker) than its parent's peak."""
    assert idle_mib < peak_mib < RAM_MIB
    if parent_peak_mib is not None:
        assert peak_mib < parent_peak_mib


def auc_from_csv(*paths: Path) -> float:
    """ROC AUC of the `score` / `label` columns of patches.csv files together (Mann-Whitney, ties halved)."""
    from scipy.stats import rankdata

    rows = [row for path in paths for row in csv.DictReader(path.open())]
    scores = np.array([float(r["score"]) for r in rows])
    positive = np.array([int(float(r["label"])) == 1 for r in rows])
    ranks = rankdata(scores)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# --- the shared peak-memory measure and pure helpers: known answers ---------------------------------------------


def test_peak_memory_grows_by_an_allocation_and_a_reset_forgets_it():
    machine = _bench("machine")
    peak = machine.PeakMemory("cpu")
    assert peak.peak_cuda_mib() is None
    if not peak.reset():
        pytest.skip("VmHWM cannot be reset here (/proc/self/clear_refs not writable)")
    base = peak.peak_rss_mib()
    assert base == pytest.approx(machine.rss_mib(), abs=5)  # right after a reset the peak is the current RSS
    assert base == pytest.approx(_own_peak_mib(), abs=5)
    # 200 MiB of fresh pages, every one written. A plain numpy allocation can be served from memory the process
    # freed earlier and still holds (glibc reuses a large free heap chunk), which would not raise the RSS at all.
    block = mmap.mmap(-1, 200 * 2**20)
    pages = np.frombuffer(block, dtype=np.uint8)
    pages[:] = 1
    assert 190 < peak.peak_rss_mib() - base < 230
    del pages
    block.close()
    assert 190 < peak.peak_rss_mib() - base < 230  # the peak outlives the memory
    assert peak.reset()
    assert peak.peak_rss_mib() < base + 20  # a reset forgets it ...
    assert peak.process_peak_rss_mib() > base + 190  # ... the process peak does not


def test_peak_cuda_memory_grows_by_an_allocation():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    peak = _bench("machine").PeakMemory("cuda")
    peak.reset()
    base = peak.peak_cuda_mib()
    block = torch.empty(100 * 2**20, dtype=torch.uint8, device="cuda")
    assert 100 <= peak.peak_cuda_mib() - base < 104
    del block


def test_mirrored_slices_ratio_lines_and_markdown_cells_known_answers():
    inference, run_all = _bench("inference"), _bench("run_all")
    assert inference.mirrored_slices(3, 8).tolist() == [0, 1, 2, 2, 1, 0, 0, 1]
    assert inference.mirrored_slices(119, 100).tolist() == list(range(100))
    assert run_all.ratio_lines("machine: x\n a 1\n\nratio a / b 2.00\n  more\n") == ["ratio a / b 2.00", "more"]
    assert run_all.ratio_lines("x\n1 slices: peak 2 GiB (target <= 12 GiB)\nratio 1\n")[0].startswith("1 slices")
    assert run_all.markdown_table([{"a": 1.234567, "b": None}]) == "| a | b |\n|---|---|\n| 1.235 |  |"
    assert run_all.parse_extra(["training=--epochs 1", "training=--steps '2'"]) == {
        "training": ["--epochs", "1", "--steps", "2"]
    }
    with pytest.raises(ValueError):
        run_all.parse_extra(["nope=--x 1"])


def test_make_ct_mirrors_and_cuts_the_real_ct_keeping_world_positions(tmp_path, real_case):
    inference = _bench("inference")
    source = nib.load(str(real_case / "nifti" / "ct.nii.gz"))
    data = np.asanyarray(source.dataobj)
    extended = nib.load(str(inference.make_ct(real_case / "nifti" / "ct.nii.gz", 125, tmp_path / "ct.nii")))
    assert extended.shape == (512, 512, 125) and np.allclose(extended.affine, source.affine)
    assert np.array_equal(extended.dataobj[:, :, 119], data[:, :, 118])  # the mirror starts at the end
    cut = nib.load(str(inference.make_ct(real_case / "nifti" / "ct.nii.gz", 4, tmp_path / "cut.nii", side=100)))
    assert cut.shape == (100, 100, 4)
    assert np.array_equal(np.asanyarray(cut.dataobj), data[206:306, 206:306, :4])
    assert np.allclose(cut.affine @ [0, 0, 2, 1], source.affine @ [206, 206, 2, 1])  # same voxel, same place


# --- each benchmark run -----------------------------------------------------------------------------------------


@pytest.mark.slow  # ~20 s each: benchmark smoke runs, kept out of the default suite
def test_inference_benchmark_measures_each_method_in_its_own_process(
    tmp_path, capsys, real_case, idle_python_mib, ballast
):
    result_file = tmp_path / "inference.json"
    assert _bench("inference").main([*TINY_CT, "--json", str(result_file)]) == 0
    lines = capsys.readouterr().out.splitlines()
    result = json.loads(result_file.read_text())
    assert result["shape"] == [128, 128, 16] and "volume: 128 x 128 x 16 voxels, device cpu" in lines
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("method ")) :]
    printed = {}
    for row in result["rows"]:
        line = next(line for line in table if line.startswith(row["method"]))
        load, total, infer, rss, cuda = line[len(row["method"]) :].split()
        printed[row["method"]] = {"total": total, "infer": infer, "rss": rss}
        assert (load, total, infer) == tuple(f"{row[k]:.2f}" for k in ("model_load_s", "end_to_end_s", "inference_s"))
        assert rss == f"{row['peak_rss_mib']:.0f}" and cuda == "-" and row["peak_cuda_mib"] is None
        assert 0 < row["model_load_s"] and 0 < row["inference_s"] <= row["end_to_end_s"]
        assert_plausible_peak(row["peak_rss_mib"], idle_python_mib, ballast)
    default, ours = printed["MONAI default sliding window"], printed["LiverVAE two-stage"]
    match = re.fullmatch(
        r"ratio MONAI default / LiverVAE: end to end ([\d.]+)x, inference ([\d.]+)x, peak RSS ([\d.]+) "
        r"\(target >= 6x on a GPU; LiverVAE end to end ([\d.]+) s vs target <= 60 s on 2 cores\)",
        lines[-1],
    )
    assert match, lines[-1]
    for ratio, key in zip(match.groups()[:3], ("total", "infer", "rss")):
        assert_ratio(ratio, default[key], ours[key])
    rows = {row["method"]: row for row in result["rows"]}
    by_json = rows["MONAI default sliding window"]["end_to_end_s"] / rows["LiverVAE two-stage"]["end_to_end_s"]
    assert match.group(1) == f"{by_json:.2f}"
    assert match.group(4) == f"{rows['LiverVAE two-stage']['end_to_end_s']:.1f}"


@pytest.mark.slow  # ~20 s each: benchmark smoke runs, kept out of the default suite
def test_memory_benchmark_measures_both_source_grid_steps_in_their_own_processes(
    tmp_path, capsys, real_case, idle_python_mib, ballast
):
    from livervae.bundle import BundlePredictor

    memory = _bench("memory")
    # The override really swaps the last post-processing step (the shipped tumour model, as the run below uses).
    predictor = BundlePredictor(device="cpu", overrides=memory.invertd_override())
    assert type(predictor.postprocessing.transforms[-1]).__name__ == "Invertd"
    assert type(BundlePredictor(device="cpu").postprocessing.transforms[-1]).__name__ == "SourceGridLabeld"

    result_file = tmp_path / "memory.json"
    assert memory.main([*TINY_CT, "--compare-invertd", "--json", str(result_file)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {row["source_grid_step"]: row for row in json.loads(result_file.read_text())["rows"]}
    assert set(rows) == {"SourceGridLabeld", "Invertd"}
    printed = {}
    for step, row in rows.items():
        line = next(line.split() for line in lines if line.split()[:2] == ["16", step])
        printed[step] = line[3]
        assert line[2:] == [f"{row['seconds']:.1f}", f"{row['peak_rss_gib']:.2f}", "-"]
        assert row["seconds"] > 0 and row["peak_cuda_gib"] is None
        assert_plausible_peak(row["peak_rss_gib"] * 1024, idle_python_mib, ballast)
    assert rows["Invertd"]["liver_ml"] == pytest.approx(rows["SourceGridLabeld"]["liver_ml"], rel=0.05, abs=1.0)
    assert lines[-2] == f"16 slices: peak RSS {printed['SourceGridLabeld']} GiB (target <= 12 GiB)"
    match = re.fullmatch(r"ratio peak RSS SourceGridLabeld / Invertd by slices: 16: ([\d.]+)", lines[-1])
    assert match, lines[-1]
    assert_ratio(match.group(1), printed["SourceGridLabeld"], printed["Invertd"])
    ours, before = rows["SourceGridLabeld"]["peak_rss_gib"], rows["Invertd"]["peak_rss_gib"]
    assert match.group(1) == f"{ours / before:.2f}"


def _active_contour_output(lines: list[str], rows: list[dict]) -> None:
    """The active-contour table and ratio lines in `lines` agree with the JSON `rows` and with each other."""
    for row in rows:
        size = f"{row['size']}³"
        cells = next(line.split() for line in lines if line.split()[:2] == [row["algorithm"], size])
        assert cells[2:] == [f"{row['skimage_s']:.3f}", f"{row['torch_cpu_s']:.4f}", "-", "True"]
        assert row["skimage_s"] > 0 and row["torch_cpu_s"] > 0 and row["cpu_identical"]
        ratio = next(line.split()[-1] for line in lines if line.strip().startswith(f"{row['algorithm']} {size}:"))
        assert ratio == f"{row['skimage_s'] / row['torch_cpu_s']:.1f}x"
        assert_ratio(ratio.rstrip("x"), cells[2], cells[3])


def test_active_contour_benchmark_times_both_algorithms_with_identical_masks(tmp_path, capsys):
    result_file = tmp_path / "active_contour.json"
    argv = ["--sizes", "32", "--iterations", "2", "--repeats", "1", "--json", str(result_file)]
    assert _bench("active_contour").main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = json.loads(result_file.read_text())["rows"]
    assert [(r["algorithm"], r["size"], r["iterations"]) for r in rows] == [("chan_vese", 32, 2), ("geodesic", 32, 2)]
    assert lines[-3].startswith("ratios (scikit-image time / torch time")
    _active_contour_output(lines, rows)


def test_run_all_runs_the_one_benchmark_left_and_reports_its_table_and_ratios(tmp_path, capsys):
    run_all = _bench("run_all")
    skip = [name for name in run_all.BENCHMARKS if name != "active_contour"]
    extra = "active_contour=--sizes 32 --iterations 2 --repeats 1"
    assert run_all.main(["--out", str(tmp_path), "--skip", *skip, "--extra", extra]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "bench.json").read_text())
    assert list(report["benchmarks"]) == ["active_contour"]
    entry = report["benchmarks"]["active_contour"]
    assert entry["returncode"] == 0
    assert entry["command"][1:-2] == ["--sizes", "32", "--iterations", "2", "--repeats", "1"]
    output = (tmp_path / "active_contour.txt").read_text().splitlines()
    rows = json.loads((tmp_path / "active_contour.json").read_text())["rows"]
    assert entry["result"]["rows"] == rows
    _active_contour_output(output, rows)
    assert entry["ratios"] == [line.strip() for line in output[-3:]]
    markdown = (tmp_path / "bench.md").read_text()
    assert f"Machine: {report['machine']}. Date: {report['date']}." in markdown
    header = "| " + " | ".join(rows[0]) + " |"
    table = markdown.split(header, 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    cells = [[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()] for row in rows]
    assert [line.strip("| ").split(" | ") for line in table] == cells
    assert all(f"- {line}" in markdown for line in entry["ratios"])


def test_run_all_reports_a_failed_benchmark_with_its_log(tmp_path, capsys):
    run_all = _bench("run_all")
    skip = [name for name in run_all.BENCHMARKS if name != "active_contour"]
    assert run_all.main(["--out", str(tmp_path), "--skip", *skip, "--extra", "active_contour=--sizes x"]) == 1
    capsys.readouterr()
    entry = json.loads((tmp_path / "bench.json").read_text())["benchmarks"]["active_contour"]
    assert entry["returncode"] == 2 and "result" not in entry
    assert "invalid int value: 'x'" in Path(entry["log"]).read_text()
    assert f"Failed (exit 2); see `{entry['log']}`." in (tmp_path / "bench.md").read_text()


def _vessel_rate_from_csv(path: Path) -> tuple[str, int, int]:
    """Independently of the benchmark: the tumour-free patches with >= 10 % bright pixels called positive at the
    highest threshold that still finds 80 % of the tumour patches (printed rate, hits, vessel patches)."""
    rows = list(csv.DictReader(path.open()))
    positives = np.sort([float(r["score"]) for r in rows if r["label"] == "1"])[::-1]
    threshold = positives[int(np.ceil(0.8 * len(positives))) - 1]
    vessel = [float(r["score"]) for r in rows if float(r["tumor_fraction"]) == 0 and float(r["bright_fraction"]) >= 0.1]
    hits = sum(score >= threshold for score in vessel)
    return ("n/a" if not vessel else f"{hits / len(vessel):.3f}"), hits, len(vessel)


@pytest.mark.slow  # ~20 s each: benchmark smoke runs, kept out of the default suite
def test_patch_vae_benchmark_trains_and_scores_both_models_on_one_fold(tmp_path, capsys, idle_python_mib, ballast):
    argv = ["--work", str(tmp_path), "--phantoms", "3", "--phantom-preset", "small", "--no-real"]
    argv += ["--min-tumor-patches", "5", "--models", "patch_vae", "unet", "--folds", "1"]
    argv += ["--epochs", "1", "--vae-epochs", "1", "--patience", "1"]
    argv += ["--pixdim", "3", "--patch-size", "8", "--stride", "8", "--slice-size", "64", "--unet-channels", "8", "16"]
    assert _bench("patch_vae_vs_unet").main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    saved = json.loads((tmp_path / "results.json").read_text())
    results = {r["model"]: r for r in saved["results"]}
    cohort = json.loads((tmp_path / "patch_cohort_small_3" / "patch_cohort.json").read_text())
    assert len(cohort["kept"]) == 3 and all(n >= 5 for n in cohort["kept"].values())
    assert all(n < 5 for n in cohort["skipped"].values())
    header = next(i for i, line in enumerate(lines) if line.startswith("model "))
    assert lines[header].split()[-7:] == [">=0.90", "pooled", "vessel", "FP", "other", "FP", "Dice"]
    printed = {}
    for model, row in results.items():
        cells = next(line.split() for line in lines[header:] if line.startswith(model + " "))
        memory, train_s, engine_s, epochs, auc, folds_090, pooled, vessel_fp, other_fp, dice = cells[1:]
        printed[model] = {"memory": memory, "train": train_s, "engine": engine_s, "pooled": pooled}
        assert memory == f"{row['rss_growth_mib']:.0f}" and row["peak_cuda_mib"] is None
        assert [train_s, engine_s] == [f"{row['train_seconds']:.1f}", f"{row['engine_seconds']:.1f}"]
        assert epochs == ("1+1" if model == "patch_vae" else "1")
        assert 0 < row["engine_seconds"] < row["train_seconds"]
        assert_plausible_peak(row["peak_rss_mib"], idle_python_mib)
        assert_plausible_peak(row["process_peak_rss_mib"], idle_python_mib, ballast)
        # VmHWM is read from the kernel's approximate per-CPU RSS counters: equal peaks may differ by a few pages.
        assert 0 < row["rss_growth_mib"] < row["peak_rss_mib"] <= row["process_peak_rss_mib"] + 2
        patches = Path(row["eval_dir"]) / "patches.csv"
        assert auc == pooled == f"{auc_from_csv(patches):.3f}" == f"{row['auc']:.3f}"
        assert folds_090 == f"{int(row['auc'] >= 0.9)}/1"
        rate, hits, vessel_patches = _vessel_rate_from_csv(patches)
        assert vessel_fp == rate and row["vessels"]["vessel_false_positives"] == hits
        assert row["vessels"]["vessel_patches"] == vessel_patches > 0
        assert other_fp != "n/a" and dice == ("-" if model == "patch_vae" else f"{row['dice']:.3f}")
    vae, unet = printed["patch_vae"], printed["unet"]
    ratio_line = next(line for line in lines if line.startswith("ratio patch_vae / unet:"))
    match = re.fullmatch(
        r"ratio patch_vae / unet: memory ([\d.]+), training time ([\d.]+) \(engines only ([\d.]+)\), "
        r"pooled AUC ([\d.]+)",
        ratio_line,
    )
    assert match, ratio_line
    for ratio, key in zip(match.groups(), ("memory", "train", "engine", "pooled")):
        assert_ratio(ratio, vae[key], unet[key])
    time_ratio = results["patch_vae"]["train_seconds"] / results["unet"]["train_seconds"]
    assert lines[-1].startswith("targets: AUC >= 0.90 on >= 5 folds: ") and lines[-1].endswith(
        f"time <= 0.67 x unet: {time_ratio:.2f} ({'met' if time_ratio <= 2 / 3 else 'not met'})"
    )
    assert "(not met)" in lines[-1].split(";")[0]  # one fold cannot reach five
    assert _bench("patch_vae_vs_unet").main(["--report", str(tmp_path / "results.json")]) == 0
    assert capsys.readouterr().out.rstrip("\n") == saved["report"] == "\n".join(lines[header - 2 :])


@pytest.mark.slow
def test_training_benchmark_times_step_and_both_data_paths(tmp_path):
    result_file = tmp_path / "training.json"
    command = [sys.executable, str(BENCHMARKS / "training.py"), "--phantoms", "2", "--phantom-preset", "small"]
    command += ["--epochs", "1", "--steps", "1", "--json", str(result_file)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    result = json.loads(result_file.read_text())
    paths = {"isolated step (": "isolated_step", "optimised epoch (": "optimised", "naive epoch (": "naive"}
    printed = {}
    for prefix, key in paths.items():
        seconds, iterations, rate = next(line.split()[-3:] for line in lines if line.startswith(prefix))
        printed[key] = rate
        if key == "isolated_step":
            assert (seconds, iterations) == (f"{result['isolated_step_s']:.3f}", "1")
        else:
            assert (seconds, iterations) == (f"{result[key + '_epoch_s']:.2f}", str(result[key + "_iterations"]))
        assert float(seconds) > 0 and int(iterations) >= 1
        assert_ratio(rate, iterations, seconds, exact_numerator=True)
    assert result["optimised_iterations"] == result["naive_iterations"]
    match = re.fullmatch(
        r"ratio optimised epoch / isolated step ([\d.]+) \(target >= 0\.90\), optimised / naive ([\d.]+)", lines[-1]
    )
    assert match, lines[-1]
    assert_ratio(match.group(1), printed["optimised"], printed["isolated_step"])
    assert_ratio(match.group(2), printed["optimised"], printed["naive"])
    naive_rate = result["naive_iterations"] / result["naive_epoch_s"]
    assert match.group(2) == f"{result['optimised_iterations'] / result['optimised_epoch_s'] / naive_rate:.2f}"


@pytest.mark.slow
def test_batch_benchmark_runs_loop_and_both_batch_modes_on_one_folder(tmp_path, capsys, real_case):
    batch = _bench("batch_inference")
    out = tmp_path / "batch.json"
    assert batch.main(["--phantoms", "1", "--side", "64", "--workers", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    rows = json.loads(out.read_text())["rows"]
    assert [r["method"] for r in rows] == ["loop of single-case infer", "batch, 1 worker", "batch, 2 workers"]
    for row in rows:
        assert row["cases"] == 2 and 0 <= row["cpu_percent"] <= 100
        assert row["cases_per_hour"] == pytest.approx(2 * 3600 / row["seconds"], rel=0.01)
    loop, single, many = (r["cases_per_hour"] for r in rows)
    ratio = printed[-1]
    assert ratio.startswith("ratio batch/loop (cases per hour): ")
    assert (
        f"1 worker {single / loop:.2f}x, 2 workers {many / loop:.2f}x; 2 workers / 1 worker {many / single:.2f}x"
        in ratio
    )


def test_uncertainty_benchmark_reports_what_its_cases_give(tmp_path, capsys):
    """A quick run (small phantoms, each hard variant once, no real CT): every case score statistic printed is the
    one its JSON cases give, recomputed here; each case's truth and flag follow from its Dice."""
    from scipy.stats import spearmanr

    from livervae.metrics.calibration import rank_auroc

    uncertainty = _bench("uncertainty")
    out = tmp_path / "uncertainty.json"
    args = ["--quick", "--calibration", "1", "--phantoms", "1", "--mc-samples", "0", "--timing-slices", "0"]
    assert uncertainty.main([*args, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert set(result["estimators"]) == {"none", "flip", "hu_shift", "tta"}
    cases = result["estimators"]["none"]["cases"]
    assert [c["kind"] for c in cases] == ["plain", "noise", "phase", "cut_fov", "metal"]
    for c in cases:
        assert c["true_quality"] == pytest.approx(min(c["liver_dice"], c["tumor_dice"]))
        assert c["bad"] == (c["liver_dice"] < 0.9 or c["tumor_dice"] < 0.5)
        assert c["score"] == pytest.approx(min(c["liver_expected_dice"], c["tumor_expected_dice"]), abs=1e-4)
        assert c["variants"]["expected_dice"] == pytest.approx(c["score"], abs=1e-4)
        assert c["variants"]["expected_dice+ood"] == pytest.approx(
            c["variants"]["expected_dice"] / max(1.0, c["reconstruction_ratio"]), rel=1e-3
        )
    truths = [c["true_quality"] for c in cases]
    for name, values in result["estimators"]["none"]["variants"].items():
        scores = [c["variants"][name] for c in cases]
        rho = spearmanr(scores, truths).statistic
        assert values["spearman"] == (None if np.isnan(rho) else pytest.approx(rho))
        assert values["flag_auroc"] == rank_auroc(-np.array(scores), np.array([c["bad"] for c in cases]))
        assert f"| {name} | " in printed
    for estimator in result["estimators"].values():
        assert 0.05 <= estimator["liver_temperature"] <= 5 and 0.05 <= estimator["tumor_temperature"] <= 5
        for metrics in estimator["voxel"].values():
            assert 0 <= metrics["ece"] <= 1 and 0 <= metrics["error_rate"] <= 1
    assert printed.rstrip().splitlines()[-1].startswith("targets (none): score Spearman ")
    assert [row["estimator"] for row in result["rows"]] == list(result["estimators"])


def test_uncertainty_benchmark_cases_come_from_the_synthetic_generator_the_weights_trained_on(tmp_path):
    """The default generator: synthetic-pool cases of seed 7 (calibration) and the test seed, each with one hard
    variant and no separate phase variant (the generator draws the phase), then the real CT."""
    from livervae.data.synthetic.generator import SyntheticConfig, generate_synthetic_case

    uncertainty = _bench("uncertainty")
    # Seed 2026 is the default test cohort; another seed (here, as `--test-seed 4242` gives it) measures the score
    # on cases its rules were not chosen on.
    assert uncertainty.TEST_SEED == 2026
    calibrate, test = uncertainty.make_cases(tmp_path, 1, 1, test_seed=4242)
    assert [c.kind for c in calibrate] == ["calibration"]
    assert [c.kind for c in test] == ["plain", "noise", "cut_fov", "metal", "real"]
    _, expected, _, _ = generate_synthetic_case(0, 4242, SyntheticConfig.training_pool())
    assert np.array_equal(test[0].label, expected.array)
    assert np.array_equal(test[1].label, expected.array)  # noise leaves the reference alone
    assert test[2].label.size < expected.array.size  # the field of view cut
    with pytest.raises(ValueError, match="unknown generator"):
        uncertainty.make_cases(tmp_path / "other", 1, 1, generator="bodyparts")


@pytest.mark.slow
def test_sim_to_real_benchmark_trains_on_synthetic_data_and_scores_real_and_unseen_cases(tmp_path, capsys):
    """A tiny run: a 4-case synthetic pool, stage 1 for one epoch on it and on generated cases; every test set
    scored, the no-liver CTs measured, and the printed table is the JSON's numbers."""
    sim_to_real = _bench("sim_to_real")
    out = tmp_path / "sim.json"
    args = ["--variants", "synthetic", "synthetic_generated", "--train-cases", "4", "--folds", "2"]
    args += ["--iterations", "1", "--test-cases", "1"]
    assert sim_to_real.main([*args, "--out", str(tmp_path / "work"), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())["results"]
    assert [r["variant"] for r in results] == ["synthetic", "synthetic_generated"]
    for result in results:
        assert result["liver_epochs"] == 1 and result["liver_iterations"] == 1
        for name in ("real CT (3D-IRCADb-01 #17)", "unseen parametric phantoms", "unseen synthetic cases"):
            assert 0.0 <= result[name]["liver_dice"] <= 1.0
            assert f"| {result['variant']} | {name} | {result[name]['liver_dice']:.3f} |" in printed
        assert len(result["no_liver_ml"]) == 2 and all(v >= 0 for v in result["no_liver_ml"])
    # The generated variant trained on cases of its own cohort, not on the pool's.
    run = tmp_path / "work" / "synthetic_generated" / "train" / "liver"
    assert any(run.glob("events.out.tfevents.*"))
    # The pool is kept and reused by a rerun (same cases, no regeneration).
    assert (tmp_path / "work" / "synthetic" / "pool" / "datalist.json").is_file()


def test_sim_to_real_table_shows_every_test_set_and_the_no_liver_volumes():
    sim_to_real = _bench("sim_to_real")
    row = {"liver_dice": 0.9312, "liver_volume_error": -0.0421, "tumour_dice": 0.5, "lesions_found": 2, "lesions": 2}
    row["false_positive_lesions"] = 1
    result = {"variant": "synthetic", "real": row, "phantoms": {"liver_dice": 0.95, "liver_volume_error": 0.01}}
    result["no_liver_ml"] = [0.0, 3.5]
    lines = sim_to_real.table([result], ["real", "phantoms"]).splitlines()
    assert lines[2] == "| synthetic | real | 0.931 | -4.2 % | 0.500 | 2 / 2 | 1 |"
    assert lines[3] == "| synthetic | phantoms | 0.950 | +1.0 % | - | - | - |"
    assert "liver predicted 0 / 3.5 mL" in lines[4]


def test_uncertainty_calibration_fits_the_tumour_only_where_the_tumour_model_ran():
    """A reference tumour outside stage 1's crop (tumour probability exactly 0) is a stage-1 miss: it must not move
    the tumour temperature, which calibrates the tumour model where it ran."""
    uncertainty = _bench("uncertainty")
    rng = np.random.default_rng(0)
    # Calibrated as it stands: each voxel is tumour with the probability the model gives it (T = 1 fits).
    tumour_p = rng.uniform(0.02, 0.98, 4000)
    tumour_ref = rng.random(4000) < tumour_p
    liver_ref = rng.random(4000) < 0.5
    liver_p = np.where(liver_ref, 0.8, 0.2)

    def case(p, ref):
        return {"stages": {"none": (liver_p, p)}, "liver_ref": liver_ref, "tumor_ref": ref}

    inside = uncertainty.fit_calibration([case(tumour_p, tumour_ref)], "none", "temperature")
    missed = np.ones(3000, dtype=bool)  # a large tumour stage 1 left out of its crop
    with_miss = uncertainty.fit_calibration(
        [case(tumour_p, tumour_ref), case(np.zeros(3000), missed)], "none", "temperature"
    )
    assert with_miss["tumor_temperature"] == pytest.approx(inside["tumor_temperature"])
    assert 0.8 < inside["tumor_temperature"] < 1.25


def test_uncertainty_calibration_fits_the_liver_on_the_whole_volume_the_expected_dice_sums_over(tmp_path):
    """A liver probability with a floor of 0.02 on every voxel, air included, and a perfect label (Dice 1): the case
    score sums P(liver) over the whole volume, so the fit must see the air too and remove the floor there."""
    import torch

    from livervae.io.nifti import save_nifti
    from livervae.io.volume import Volume
    from livervae.uncertainty import calibrate, expected_dice

    uncertainty = _bench("uncertainty")
    hu = np.full((40, 40, 40), 40.0, dtype=np.float32)
    hu[20:] = -1000.0  # half the volume is air outside the body
    label = np.zeros(hu.shape, dtype=np.uint8)
    label[5:15, 5:15, 5:15] = 1
    path = save_nifti(Volume(hu, np.eye(4)), tmp_path / "ct.nii.gz")
    liver_p = np.where(label == 1, 0.95, 0.02).astype(np.float32)
    stages = np.stack([liver_p, np.zeros_like(liver_p)])
    case = uncertainty.BenchCase("floor", "calibration", path, label)
    kept = uncertainty.sampled(case, {"label": label, "stages": {"none": stages}, "reconstruction": 0.1})
    assert kept["liver_ref"].size == label.size  # every voxel of this small volume, the air included
    fitted = uncertainty.fit_calibration([kept], "none", "temperature")
    assert expected_dice(liver_p, label == 1) < 0.6  # raw: the floor's mass halves the score of a perfect mask
    calibrated = calibrate(torch.from_numpy(liver_p), fitted["liver_temperature"]).numpy()
    assert fitted["liver_temperature"] < 1.0 and expected_dice(calibrated, label == 1) > 0.9
