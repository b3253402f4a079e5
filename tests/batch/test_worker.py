"""A batch worker's case runner: one model load for many cases, failures as rows, never an exception."""

from __future__ import annotations

import json

from livervae.batch import worker as worker_module
from livervae.batch.cases import discover
from livervae.batch.worker import CaseRunner, PredictorSettings
from livervae.bundle_names import TUMOR_BUNDLE


def test_runner_loads_the_model_once_and_turns_bad_cases_into_failed_rows(phantom_archive, tmp_path, monkeypatch):
    root, _ = phantom_archive
    built = []
    real_predictor = worker_module.BundlePredictor

    def counting_predictor(*args, **kwargs):
        built.append(kwargs.get("device"))
        return real_predictor(*args, **kwargs)

    monkeypatch.setattr(worker_module, "BundlePredictor", counting_predictor)
    runner = CaseRunner(PredictorSettings(bundle=TUMOR_BUNDLE, device="cpu", torch_threads=1, overlay=True), "w1")
    cases = {c.case: c for c in discover(root, tmp_path / "out").cases}
    broken = runner.run(cases.pop("nifti/broken.nii.gz"))
    assert broken["status"] == "failed" and broken["reason"].startswith("cannot read as NIfTI")
    assert built == []  # a case that fails to read never costs a model load
    rows = [runner.run(case) for case in cases.values()]
    assert [row["status"] for row in rows] == ["done"] * 3 and built == ["cpu"]
    assert all(row["worker"] == "w1" and row["lesion_count"] >= 0 for row in rows)
    for case, row in zip(cases.values(), rows):
        stem = case.output.name.replace(".nii.gz", "").replace(".dcm", "")
        assert case.output.is_file() and case.output.with_name(f"{stem}.png").is_file()
        # The measurements come with every output, and the SR with every DICOM-SEG.
        document = json.loads(case.output.with_name(f"{stem}.json").read_text())
        assert (document["liver_ml"], document["lesion_count"]) == (row["liver_ml"], row["lesion_count"])
        assert case.output.with_name(f"{stem}.csv").is_file()
        assert case.output.with_name(f"{stem}_sr.dcm").is_file() == case.output.name.endswith(".dcm")


def test_unwritable_output_is_a_failed_row_naming_the_folder(phantom_archive, tmp_path):
    root, _ = phantom_archive
    out = tmp_path / "out"
    (out / "nifti").mkdir(parents=True)
    (out / "nifti" / "site0").write_text("a file where the output folder should be")
    case = next(c for c in discover(root, out).cases if c.case == "nifti/site0/phantom0.nii.gz")
    row = CaseRunner(PredictorSettings(bundle=TUMOR_BUNDLE, device="cpu", overlay=False), "w1").run(case)
    assert row["status"] == "failed" and str(out / "nifti" / "site0") in row["reason"]


def test_with_uncertainty_each_case_gets_its_maps_and_quality_in_the_manifest_row(phantom_archive, tmp_path):
    import nibabel as nib

    root, _ = phantom_archive
    case = next(c for c in discover(root, tmp_path / "out").cases if c.case == "nifti/site0/phantom0.nii.gz")
    settings = PredictorSettings(bundle=TUMOR_BUNDLE, device="cpu", overlay=False, uncertainty=True)
    row = CaseRunner(settings, "w1").run(case)
    assert row["status"] == "done"
    maps = case.output.with_name("phantom0_uncertainty.nii.gz")
    assert nib.load(str(maps)).shape == (*nib.load(str(case.input)).shape, 3)
    quality = json.loads(case.output.with_name("phantom0.json").read_text())["quality"]
    assert row["quality_score"] == quality["score"]
    assert row["needs_review"] == ("yes" if quality["needs_review"] else "no")
