"""Console reports: the dataset summary table printed after preprocessing and in the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_COLUMNS = (
    ("case", 16),
    ("shape", 13),
    ("spacing mm", 16),
    ("orient", 6),
    ("HU range", 13),
    ("liver mL", 9),
    ("tumour mL", 9),
    ("lesions", 7),
    ("severity", 8),
    ("fold", 4),
)


def _row(case_id: str, s: dict[str, Any]) -> list[str]:
    labelled = s.get("labelled", False)
    severity = s.get("severity")
    return [
        case_id,
        "x".join(str(v) for v in s["shape"]),
        "x".join(f"{v:.2f}" for v in s["spacing_mm"]),
        s["orientation"],
        f"{s['hu_range'][0]:.0f}..{s['hu_range'][1]:.0f}",
        f"{s['liver_ml']:.1f}" if labelled else "-",
        f"{s['tumor_ml']:.1f}" if labelled else "-",
        str(s["lesion_count"]) if labelled else "-",
        "-" if severity is None else f"{severity:.3f}",
        str(s.get("fold", "-")),
    ]


def format_dataset_summary(summary: dict[str, Any], out: Path | str) -> str:
    """Format a dataset summary (as written to summary.json) as a fixed-width table with a totals line."""
    totals = summary["dataset"]
    lines = [
        f"dataset {out}: {totals['cases']} case(s), {totals['labelled_cases']} labelled, "
        f"{totals['patients']} patient(s)"
        + (f", {totals['lesions_total']} lesion(s)" if "lesions_total" in totals else "")
    ]
    widths = [max(w, len(name)) for name, w in _COLUMNS]
    rows = [_row(case_id, s) for case_id, s in summary["cases"].items()]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row)]
    lines.append("  ".join(name.ljust(w) for (name, _), w in zip(_COLUMNS, widths)))
    lines.extend("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows)
    return "\n".join(lines)


def print_dataset_summary(summary: dict[str, Any], out: Path | str) -> None:
    """Print `format_dataset_summary` to stdout."""
    print(format_dataset_summary(summary, out), flush=True)
