import math

import openpyxl
import pytest

from livervae.data.clinical import (
    CLINICAL_CSV_COLUMNS,
    SEVERITY_ITEMS,
    compute_severity,
    read_clinical_sheet,
    severity_table_rows,
)
from livervae.errors import InputError

HEADER = [
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
]
ROWS = [
    ["HCC_001", "M", 61, 5.0, "multinodular", "< or = 50%", "IIIa", "B", 2, "I", 400],
    ["HCC_002", "F", 70, 1.8, "uninodular", "< or = 50%", "I", "A", 0, "I", 5],
    ["HCC_003", "M", 55, 14.0, "multinodular", ">50%", "IVb", "C", 5, "III", 25000],
    ["HCC_004", "M", 66, None, "NA", "", "II", "B", 1, "II", 80],
]


def test_item_weights_sum_to_one():
    assert sum(item.weight for item in SEVERITY_ITEMS) == pytest.approx(1.0)


def test_known_answer_for_a_complete_row():
    row = dict(zip(HEADER, ROWS[0]))
    severity = compute_severity(row)
    # 0.25*0.5 + 0.20*0 + 0.10*1 + 0.15*(2/3) + 0.10*0.5 + 0.10*(2/6) + 0.05*0 + 0.05*log10(400)/4
    expected = 0.125 + 0.1 + 0.1 + 0.05 + 0.1 / 3 + 0.05 * math.log10(400) / 4
    assert severity.value == pytest.approx(expected)
    assert severity.available_weight == pytest.approx(1.0)


def test_severity_orders_patients_by_tumor_burden():
    values = [compute_severity(dict(zip(HEADER, row))).value for row in ROWS[:3]]
    assert values[1] < values[0] < values[2]
    assert 0.0 <= values[1] and values[2] <= 1.0


def test_missing_items_are_renormalised_away():
    row = dict(zip(HEADER, ROWS[0]))
    row["AFP"] = "unknown"
    severity = compute_severity(row)
    present = 0.125 + 0.1 + 0.1 + 0.05 + 0.1 / 3
    assert severity.components["afp"] is None
    assert severity.available_weight == pytest.approx(0.95)
    assert severity.value == pytest.approx(present / 0.95)


def test_no_burden_item_means_no_indicator():
    severity = compute_severity(dict(zip(HEADER, ROWS[3])))
    assert severity.value is None
    assert severity.components["tnm"] == pytest.approx(1 / 3)


def test_too_little_information_means_no_indicator():
    assert compute_severity({"Tr_Size": 3.0}).value is None  # weight 0.25 < 0.4
    assert compute_severity({"Tr_Size": 3.0, "TNM": "II"}).value == pytest.approx((0.25 * 0.3 + 0.15 / 3) / 0.4)


@pytest.mark.parametrize(
    "column, value, normalised",
    [
        ("TNM", "Stage IIIB", 2 / 3),
        ("TNM", "4a", 1.0),
        ("BCLC", "stage D", 1.0),
        ("BCLC", 0, 0.0),
        ("Okuda", 2, 0.5),
        ("T_involvment", ">50%", 1.0),
        ("tumor_nodul", 1, 1.0),
        ("Tr_Size", "12,5", 1.0),
        ("AFP", 0.5, 0.0),
    ],
)
def test_codings_seen_in_real_sheets(column, value, normalised):
    item = next(i for i in SEVERITY_ITEMS if i.column == column)
    row = {"Tr_Size": 1.0, "tumor_nodul": "uninodular", "T_involvment": "< or = 50%", column: value}
    assert compute_severity(row).components[item.name] == pytest.approx(normalised)


@pytest.mark.parametrize("column, value", [("BCLC", "E"), ("Tr_Size", -2), ("CLIP_Score", 7), ("TNM", "V")])
def test_values_outside_the_domain_are_errors(column, value):
    with pytest.raises(InputError, match=f"sheet.xlsx \\(HCC_009\\): column {column} has an unrecognised value"):
        compute_severity({"Tr_Size": 2.0, column: value}, source="sheet.xlsx (HCC_009)")


def test_reads_xlsx_with_a_title_row(tmp_path):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["HCC-TACE-Seg clinical data V2"])
    sheet.append(HEADER)
    for row in ROWS:
        sheet.append(row)
    workbook.save(tmp_path / "clinical.xlsx")
    table = read_clinical_sheet(tmp_path / "clinical.xlsx")
    assert sorted(table) == ["HCC_001", "HCC_002", "HCC_003", "HCC_004"]
    assert table["HCC_003"]["BCLC"] == "C" and table["HCC_003"]["AFP"] == 25000
    assert compute_severity(table["HCC_001"]).value == pytest.approx(compute_severity(dict(zip(HEADER, ROWS[0]))).value)


def test_reads_semicolon_csv(tmp_path):
    lines = [";".join(HEADER)] + [";".join("" if v is None else str(v) for v in row) for row in ROWS]
    (tmp_path / "clinical.csv").write_text("\n".join(lines), encoding="utf-8")
    table = read_clinical_sheet(tmp_path / "clinical.csv")
    assert table["HCC_002"]["TNM"] == "I"
    assert compute_severity(table["HCC_004"]).value is None


def test_sheet_errors(tmp_path):
    with pytest.raises(InputError, match="clinical sheet not found"):
        read_clinical_sheet(tmp_path / "none.xlsx")
    (tmp_path / "noid.csv").write_text("Patient,AFP\nA,3\n")
    with pytest.raises(InputError, match="no TCIA_ID column"):
        read_clinical_sheet(tmp_path / "noid.csv")
    (tmp_path / "dup.csv").write_text("TCIA_ID,AFP\nHCC_001,3\nHCC_001,4\n")
    with pytest.raises(InputError, match="patient HCC_001 appears twice"):
        read_clinical_sheet(tmp_path / "dup.csv")
    (tmp_path / "sheet.ods").write_text("x")
    with pytest.raises(InputError, match="unsupported clinical sheet format"):
        read_clinical_sheet(tmp_path / "sheet.ods")


def test_table_rows_leave_missing_values_empty():
    rows = severity_table_rows([("HCC_004", compute_severity(dict(zip(HEADER, ROWS[3]))))])
    assert tuple(rows[0]) == CLINICAL_CSV_COLUMNS
    assert rows[0]["severity"] == "" and rows[0]["item_size"] == "" and rows[0]["item_bclc"] == "0.500000"
