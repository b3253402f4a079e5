import csv
import json

import pytest

from livervae.data.clinical import compute_severity
from livervae.data.formats import SourceOptions
from livervae.data.formats.phantom import iter_cases
from livervae.data.preprocess import preprocess


def test_adapter_yields_the_requested_cohort():
    cases = list(iter_cases(None, SourceOptions(phantom_n=2, phantom_seed=5)))
    assert [c.case_id for c in cases] == ["phantom_000", "phantom_001"]
    assert all(c.clinical["TCIA_ID"] == c.case_id for c in cases)
    assert cases[0].extra["truth"]["seed"] == 5


def test_phantom_dataset_carries_severity_and_exact_labels(tmp_path):
    summary = preprocess("phantom", None, tmp_path / "ph", SourceOptions(phantom_n=3, phantom_seed=0), n_folds=3)
    datalist = json.loads((tmp_path / "ph" / "datalist.json").read_text())
    assert datalist["clinical"] == "clinical.csv" and sorted(e["fold"] for e in datalist["training"]) == [0, 1, 2]
    with open(tmp_path / "ph" / "clinical.csv", newline="") as handle:
        rows = {row["patient_id"]: row for row in csv.DictReader(handle)}
    for case in iter_cases(None, SourceOptions(phantom_n=3, phantom_seed=0)):
        stats = summary["cases"][case.case_id]
        truth = case.extra["truth"]
        assert stats["lesion_count"] == len(truth["lesions"])
        assert stats["liver_voxels"] == truth["liver_voxels"] and stats["tumor_voxels"] == truth["tumor_voxels"]
        expected = compute_severity(case.clinical).value
        if expected is None:
            assert rows[case.case_id]["severity"] == ""
        else:
            assert float(rows[case.case_id]["severity"]) == pytest.approx(expected, abs=1e-6)


def test_synthetic_preset_writes_ct_generated_from_real_label_maps(tmp_path):
    from livervae.data.synthetic.label_maps import subjects_dir

    if not (subjects_dir() / "s0004").is_dir():
        pytest.skip("shared data folder with totalsegmentator_subjects not found (set LIVERVAE_DATA_DIR)")
    options = SourceOptions(phantom_n=2, phantom_seed=4, phantom_preset="synthetic-pool")
    summary = preprocess("phantom", None, tmp_path / "syn", options, n_folds=2)
    assert sorted(summary["cases"]) == ["synthetic_0000", "synthetic_0001"]
    for case in iter_cases(None, options):
        stats, truth = summary["cases"][case.case_id], case.extra["truth"]
        assert stats["liver_ml"] == pytest.approx(truth["liver_ml"], abs=0.01)
        assert stats["tumor_ml"] == pytest.approx(truth["tumor_ml"], abs=0.01)
        assert truth["spacing"][0] == 2.0 and case.clinical["TCIA_ID"] == case.case_id


def test_unknown_preset_is_refused():
    from livervae.errors import InputError

    with pytest.raises(InputError, match="preset"):
        list(iter_cases(None, SourceOptions(phantom_preset="huge")))
