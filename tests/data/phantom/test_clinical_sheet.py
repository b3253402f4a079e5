"""`livervae.data.phantom.clinical_sheet`: HCC-TACE-Seg columns and codings, severity following the burden."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from livervae.data.clinical import compute_severity
from livervae.data.phantom import PhantomConfig, clinical_row, generate_cohort

SMALL = PhantomConfig.small()
COHORT_SEED = 0  # the seed and size of conftest's `cohort`
COHORT_SIZE = 16
CLINICAL_COLUMNS = {
    "TCIA_ID",
    "Sex",
    "Age",
    "Tr_Size",
    "tumor_nodul",
    "T_involvment",
    "TNM",
    "BCLC",
    "CLIP_Score",
    "Okuda",
    "AFP",
}


def test_clinical_rows_use_hcc_tace_seg_columns_and_codings(cohort: list[tuple]) -> None:
    rows = [clinical_row(truth, np.random.default_rng(i)) for i, (_, _, truth, _) in enumerate(cohort)]
    missing = 0
    for row, (_, _, truth, _) in zip(rows, cohort):
        assert set(row) == CLINICAL_COLUMNS
        assert row["TCIA_ID"] == truth.case_id
        largest = max(lesion.diameter_mm for lesion in truth.lesions) / 10.0
        assert row["Tr_Size"] == pytest.approx(largest, rel=0.25, abs=0.1)
        assert row["Sex"] in {"M", "F", None}
        assert row["tumor_nodul"] in {"uninodular", "multinodular", None}
        assert row["T_involvment"] in {"< or = 50%", ">50%", None}
        assert row["TNM"] in {"I", "II", "IIIa", "IIIb", "IIIc", "IVa", "IVb", None}
        assert row["BCLC"] in {"0", "A", "B", "C", "D", None}
        assert row["Okuda"] in {"I", "II", "III", None}
        assert row["CLIP_Score"] is None or 0 <= row["CLIP_Score"] <= 6
        assert row["AFP"] is None or row["AFP"] > 0
        if row["tumor_nodul"] is not None:
            assert row["tumor_nodul"] == ("multinodular" if len(truth.lesions) > 1 else "uninodular")
        missing += sum(value is None for value in row.values())
        compute_severity(row)  # every coding is one the severity indicator accepts
    assert missing > 0  # missing-value handling gets exercised


def test_severity_follows_tumor_burden() -> None:
    severities, tumor_ml = [], []
    for case in generate_cohort(COHORT_SIZE, COHORT_SEED, SMALL):
        severity = compute_severity(case.clinical)
        assert severity.value is not None
        severities.append(severity.value)
        tumor_ml.append(case.extra["truth"]["tumor_ml"])
    assert stats.spearmanr(severities, tumor_ml).statistic >= 0.7
