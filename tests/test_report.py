from livervae.report import format_dataset_summary


def test_table_has_a_row_per_case_and_dashes_for_unlabelled():
    summary = {
        "dataset": {"cases": 2, "labelled_cases": 1, "patients": 2, "lesions_total": 3},
        "cases": {
            "a": {
                "shape": [2, 3, 4],
                "spacing_mm": [1, 1, 2.5],
                "orientation": "LPS",
                "hu_range": [-1000, 900],
                "labelled": True,
                "liver_ml": 1500.04,
                "tumor_ml": 12.34,
                "lesion_count": 3,
                "severity": 0.25,
                "fold": 1,
            },
            "b": {
                "shape": [2, 3, 4],
                "spacing_mm": [1, 1, 2.5],
                "orientation": "RAS",
                "hu_range": [-1024, 1],
                "labelled": False,
            },
        },
    }
    lines = format_dataset_summary(summary, "out").splitlines()
    assert lines[0] == "dataset out: 2 case(s), 1 labelled, 2 patient(s), 3 lesion(s)"
    assert lines[2].split() == [
        "a",
        "2x3x4",
        "1.00x1.00x2.50",
        "LPS",
        "-1000..900",
        "1500.0",
        "12.3",
        "3",
        "0.250",
        "1",
    ]
    assert lines[3].split() == ["b", "2x3x4", "1.00x1.00x2.50", "RAS", "-1024..1", "-", "-", "-", "-", "-"]
