"""Batch runs end to end with the shipped weights: in this process and on a local Dask cluster with a worker
killed mid-run; manifests checked row by row against the written outputs."""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from livervae.batch import PredictorSettings, format_batch_result, run_batch
from livervae.batch.manifest import COLUMNS
from livervae.bundle_names import TUMOR_BUNDLE
from livervae.data.summary import summarise_case
from livervae.infer import read_input
from livervae.io.dicom_seg import read_dicom_seg_labels
from livervae.io.dicom_series import read_dicom_series
from livervae.io.nifti import load_nifti

SETTINGS = PredictorSettings(bundle=TUMOR_BUNDLE, device="cpu", overlay=False)


def _manifest(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == COLUMNS
        return {row["case"]: row for row in reader}


def _check_done_rows(rows: dict[str, dict[str, str]], out: Path) -> None:
    """Every done row's output exists and its volumes are those of the written label map."""
    for row in rows.values():
        if row["status"] != "done":
            continue
        output = Path(row["output"])
        assert output.is_relative_to(out) and output.is_file()
        if output.name.endswith(".dcm"):
            series = read_dicom_series(row["input"], series_uid=row["series_uid"])
            image = series.volume
            array = read_dicom_seg_labels(output, series).array  # refuses a SEG that does not reference the series
        else:
            image, _ = read_input(Path(row["input"]))
            array = load_nifti(output).array
        summary = summarise_case(image, np.asarray(array))
        assert float(row["liver_ml"]) == pytest.approx(summary["liver_ml"], abs=0.01)
        assert float(row["tumor_ml"]) == pytest.approx(summary["tumor_ml"], abs=0.01)
        assert int(row["lesion_count"]) == summary["lesion_count"]
        assert float(row["seconds"]) > 0 and row["worker"] and row["finished_at"]
        # Its measurements lie beside it (written with it or not at all), and the SR beside a DICOM-SEG.
        stem = output.name.removesuffix(".nii.gz").removesuffix(".dcm")
        measured = json.loads(output.with_name(f"{stem}.json").read_text())
        assert (measured["liver_ml"], measured["lesion_count"]) == (float(row["liver_ml"]), int(row["lesion_count"]))
        assert output.with_name(f"{stem}.csv").is_file()
        assert output.with_name(f"{stem}_sr.dcm").is_file() == output.name.endswith(".dcm")


def test_in_process_batch_records_every_case_and_a_rerun_skips_what_is_done(phantom_archive, tmp_path):
    root, uids = phantom_archive
    from livervae.io.nifti import save_nifti
    from livervae.io.volume import Volume

    mask = load_nifti(root / "nifti/site0/phantom0.nii.gz")
    save_nifti(
        Volume((mask.array > 0).astype(np.uint8), mask.affine, "mask"), root / "nifti/site0/phantom0_mask.nii.gz"
    )
    out = tmp_path / "out"
    seen = []
    result = run_batch(root, out, SETTINGS, progress=False, on_result=seen.append)
    rows = _manifest(out / "manifest.csv")
    ct, mr = f"dicom/patient1/ct#{uids['ct_uid']}", f"dicom/patient1/mr#{uids['mr_uid']}"
    assert {case: row["status"] for case, row in rows.items()} == {
        ct: "done",
        mr: "skipped",
        "nifti/broken.nii.gz": "failed",
        "nifti/site0/phantom0.nii.gz": "done",
        "nifti/site0/phantom0_mask.nii.gz": "skipped",
        "nifti/site1/phantom1.nii.gz": "done",
    }
    assert rows[mr]["reason"] == "Modality MR, not CT" and rows[mr]["output"] == ""
    mask_row = rows["nifti/site0/phantom0_mask.nii.gz"]
    assert mask_row["reason"].startswith("does not look like a CT in Hounsfield units") and mask_row["output"] == ""
    assert rows["nifti/broken.nii.gz"]["reason"].startswith("cannot read as NIfTI")
    assert not (out / "nifti/broken.nii.gz").exists()
    assert rows[ct]["output"] == str(out / "dicom/patient1/ct.dcm")
    _check_done_rows(rows, out)
    assert not result.ok and result.ran == 5 and len(seen) == 5
    assert result.counts == {"done": 3, "failed": 1, "skipped": 2, "pending": 0}
    assert "failed: nifti/broken.nii.gz: cannot read as NIfTI" in format_batch_result(result)

    # Rerun: nothing done is redone; the failed case is retried (and fails again, alone).
    again = run_batch(root, out, SETTINGS, progress=False, on_result=seen.append)
    assert again.ran == 1 and seen[-1]["case"] == "nifti/broken.nii.gz"
    (root / "nifti/broken.nii.gz").unlink()
    (out / "nifti/site0/phantom0.nii.gz").unlink()  # a deleted output is redone
    third = run_batch(root, out, SETTINGS, progress=False, on_result=seen.append)
    assert third.ran == 1 and seen[-1]["case"] == "nifti/site0/phantom0.nii.gz" and third.ok
    rows = _manifest(out / "manifest.csv")
    assert "nifti/broken.nii.gz" not in rows  # its input is gone: a failure that no longer exists
    _check_done_rows(rows, out)


def test_dask_cluster_with_a_worker_killed_mid_run_ends_with_every_case_done_once(mixed_archive, real_case, tmp_path):
    from distributed import Client, LocalCluster

    root, uids = mixed_archive
    out = tmp_path / "out"
    killed: list[int] = []
    with LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:

            def kill_a_busy_worker(row: dict) -> None:
                if killed:
                    return
                busy = [address for address, keys in client.processing().items() if keys]
                if busy:
                    pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)

            seen = []
            result = run_batch(
                root,
                out,
                PredictorSettings(bundle=TUMOR_BUNDLE, device="cpu", torch_threads=1, overlay=False),
                scheduler=cluster.scheduler_address,
                progress=False,
                on_result=lambda row: (seen.append(row["case"]), kill_a_busy_worker(row)),
            )
    assert killed, "no worker was busy when the first case finished"
    rows = _manifest(out / "manifest.csv")
    ran = [c for c, row in rows.items() if row["status"] != "skipped"]
    assert sorted(seen) == sorted(ran) and len(seen) == len(set(seen)) == 5  # each case recorded once
    statuses = {c: row["status"] for c, row in rows.items()}
    assert statuses.pop("nifti/broken.nii.gz") == "failed"
    assert statuses.pop(f"dicom/patient1/mr#{uids['mr_uid']}") == "skipped"
    assert set(statuses.values()) == {"done"} and len(statuses) == 4, {c: rows[c]["reason"] for c in statuses}
    assert not result.ok and result.counts == {"done": 4, "failed": 1, "skipped": 1, "pending": 0}
    # Which worker the scheduler hands the rest to is its choice (on two cores the survivor may take them all),
    # but the cases left when the busy worker was killed were finished by other processes.
    after_kill = [rows[case]["worker"] for case in seen[1:]]
    assert any(worker and not worker.endswith(f":{killed[0]}") for worker in after_kill), after_kill
    assert "dicom/ircadb17#" in " ".join(ran)
    _check_done_rows(rows, out)
    real = next(row for case, row in rows.items() if case.startswith("dicom/ircadb17#"))
    reference = load_nifti(real_case / "nifti" / "liver.nii.gz")
    reference_ml = float(np.count_nonzero(reference.array)) * reference.voxel_volume_ml
    assert float(real["liver_ml"]) == pytest.approx(reference_ml, rel=0.25)  # shipped liver Dice is 0.84
    # Rerun with the broken file gone: every case is done, so nothing runs and no cluster is started.
    (root / "nifti/broken.nii.gz").unlink()
    assert run_batch(root, out, SETTINGS, workers=2, progress=False).ran == 0


def test_cli_batch_mode_prints_the_table_and_exits_1_when_a_case_failed(phantom_archive, tmp_path, capsys):
    from livervae.cli import main

    root, _ = phantom_archive
    manifest = tmp_path / "cases.csv"
    manifest.write_text(f"input\n{root / 'nifti/site0/phantom0.nii.gz'}\n{root / 'nifti/broken.nii.gz'}\n")
    out = tmp_path / "out"
    assert main(["infer", "-i", str(manifest), "-o", str(out), "--no-overlay", "--no-progress", "--device", "cpu"]) == 1
    printed = capsys.readouterr().out
    assert "done          1" in printed and "failed        1" in printed and "failed: " in printed
    manifest.write_text(f"input\n{root / 'nifti/site0/phantom0.nii.gz'}\n")
    assert main(["infer", "-i", str(manifest), "-o", str(out), "--no-progress", "--device", "cpu"]) == 0
    assert "ran 0 case(s)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "arguments, fault",
    [
        (["--workers", "0"], "--workers must be at least 1, got 0"),
        (["--series-uid", "1.2.3"], "--series-uid selects a series of one folder"),
        (["--bundle", "liver_tumor_patch_vae_classification"], "batch mode runs the segmentation bundles"),
    ],
)
def test_cli_batch_mode_refuses_bad_arguments_in_one_line_without_output(
    phantom_archive, tmp_path, capsys, arguments, fault
):
    from livervae.cli import main

    root, _ = phantom_archive
    out = tmp_path / "out"
    assert main(["infer", "-i", str(root), "-o", str(out), "--no-progress", *arguments]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and fault in error[0] and not out.exists()


def test_batch_output_that_is_a_file_is_refused(phantom_archive, tmp_path):
    root, _ = phantom_archive
    taken = tmp_path / "taken"
    taken.write_text("a file")
    from livervae.errors import OutputError

    with pytest.raises(OutputError, match="batch output must be a folder"):
        run_batch(root, taken, SETTINGS, progress=False)
