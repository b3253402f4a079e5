"""Per-patient tumour severity indicator in [0, 1] from an HCC-TACE-Seg-style clinical sheet.

The indicator is a weighted mean of normalised clinical items, chosen so that it grows with tumour burden
(size, extent, nodularity) and with the stage scores that summarise it. Each item is mapped to [0, 1]:

| item         | column         | mapping                                                   | weight |
|--------------|----------------|-----------------------------------------------------------|--------|
| size         | `Tr_Size`      | largest tumour diameter in cm / 10, capped at 1           | 0.25   |
| involvement  | `T_involvment` | "< or = 50%" → 0, ">50%" → 1                              | 0.20   |
| nodularity   | `tumor_nodul`  | "uninodular" → 0, "multinodular" → 1                      | 0.10   |
| tnm          | `TNM`          | I → 0, II → 1/3, III (a, b, c) → 2/3, IV (a, b) → 1       | 0.15   |
| bclc         | `BCLC`         | 0 → 0, A → 0.25, B → 0.5, C → 0.75, D → 1                 | 0.10   |
| clip         | `CLIP_Score`   | score / 6                                                 | 0.10   |
| okuda        | `Okuda`        | I → 0, II → 0.5, III → 1                                  | 0.05   |
| afp          | `AFP`          | log10(max(AFP ng/mL, 1)) / 4, capped at 1 (1 at ≥ 10,000) | 0.05   |

Missing values (empty cells, "NA", "unknown", ...) drop their item and the remaining weights are renormalised,
so a missing item counts as the mean of the present ones. The indicator itself is missing (None) when no
tumour-burden item (size, involvement, nodularity) is present or when the present items carry less than
`MIN_AVAILABLE_WEIGHT` of the total weight; weak supervision then skips that patient. Values outside an item's
domain are errors, not missing values.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livervae.errors import InputError

ID_COLUMN = "TCIA_ID"
MIN_AVAILABLE_WEIGHT = 0.4
BURDEN_ITEMS = ("size", "involvement", "nodularity")
_MISSING_TOKENS = {"", "na", "n/a", "nan", "none", "null", "unknown", "not stated", "-", "?", "."}
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4}


class _Invalid(ValueError):
    """A value outside the item's domain."""


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in _MISSING_TOKENS


def _as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise _Invalid(value)
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip().replace(",", ".")
    try:
        return float(text)
    except ValueError:
        raise _Invalid(value) from None


def _strip_stage(value: Any) -> str:
    return re.sub(r"^(stage|grade)\s*", "", str(value).strip().lower())


def _size(value: Any) -> float:
    size_cm = _as_float(value)
    if size_cm < 0:
        raise _Invalid(value)
    return min(size_cm / 10.0, 1.0)


def _involvement(value: Any) -> float:
    text = str(value).strip().lower().replace(" ", "")
    if text in {"<or=50%", "<=50%", "≤50%", "0", "0.0"}:
        return 0.0
    if text in {">50%", "1", "1.0"}:
        return 1.0
    raise _Invalid(value)


def _nodularity(value: Any) -> float:
    text = str(value).strip().lower()
    if text in {"uninodular", "single", "0", "0.0"}:
        return 0.0
    if text in {"multinodular", "multiple", "1", "1.0"}:
        return 1.0
    raise _Invalid(value)


def _tnm(value: Any) -> float:
    text = _strip_stage(value)
    match = re.fullmatch(r"(iv|iii|ii|i|[1-4])([abc])?", text)
    if not match:
        raise _Invalid(value)
    stage = int(match.group(1)) if match.group(1).isdigit() else _ROMAN[match.group(1)]
    return (stage - 1) / 3.0


def _bclc(value: Any) -> float:
    text = _strip_stage(value).upper()
    order = {"0": 0.0, "A": 0.25, "B": 0.5, "C": 0.75, "D": 1.0}
    if text.endswith(".0"):
        text = text[:-2]
    if text not in order:
        raise _Invalid(value)
    return order[text]


def _clip(value: Any) -> float:
    score = _as_float(value)
    if score != int(score) or not 0 <= score <= 6:
        raise _Invalid(value)
    return score / 6.0


def _okuda(value: Any) -> float:
    text = _strip_stage(value)
    if text.endswith(".0"):
        text = text[:-2]
    stage = _ROMAN.get(text) or (int(text) if text in {"1", "2", "3"} else None)
    if stage is None or stage > 3:
        raise _Invalid(value)
    return (stage - 1) / 2.0


def _afp(value: Any) -> float:
    afp = _as_float(value)
    if afp < 0:
        raise _Invalid(value)
    return min(math.log10(max(afp, 1.0)) / 4.0, 1.0)


@dataclass(frozen=True)
class SeverityItem:
    """One clinical item of the indicator: its sheet column, weight and mapping to [0, 1]."""

    name: str
    column: str
    weight: float
    normalise: Callable[[Any], float]


SEVERITY_ITEMS: tuple[SeverityItem, ...] = (
    SeverityItem("size", "Tr_Size", 0.25, _size),
    SeverityItem("involvement", "T_involvment", 0.20, _involvement),
    SeverityItem("nodularity", "tumor_nodul", 0.10, _nodularity),
    SeverityItem("tnm", "TNM", 0.15, _tnm),
    SeverityItem("bclc", "BCLC", 0.10, _bclc),
    SeverityItem("clip", "CLIP_Score", 0.10, _clip),
    SeverityItem("okuda", "Okuda", 0.05, _okuda),
    SeverityItem("afp", "AFP", 0.05, _afp),
)


@dataclass(frozen=True)
class Severity:
    """The indicator for one patient with the normalised items it was built from."""

    value: float | None
    components: dict[str, float | None]
    available_weight: float


def compute_severity(row: dict[str, Any], source: str = "clinical sheet") -> Severity:
    """Compute the tumour severity indicator of one patient's sheet row (see the module docstring).

    Args:
        row: column name to raw cell value; columns the indicator does not use are ignored.
        source: names the sheet and row in error messages.

    Raises:
        InputError: a present value outside its item's domain (e.g. BCLC "E", a negative size).
    """
    components: dict[str, float | None] = {}
    for item in SEVERITY_ITEMS:
        raw = row.get(item.column)
        if _is_missing(raw):
            components[item.name] = None
            continue
        try:
            components[item.name] = item.normalise(raw)
        except _Invalid:
            raise InputError(source, f"column {item.column} has an unrecognised value {raw!r}") from None
    weights = {item.name: item.weight for item in SEVERITY_ITEMS}
    available = sum(weights[name] for name, value in components.items() if value is not None)
    has_burden = any(components[name] is not None for name in BURDEN_ITEMS)
    if not has_burden or available < MIN_AVAILABLE_WEIGHT - 1e-9:
        return Severity(None, components, round(available, 6))
    total = sum(weights[name] * value for name, value in components.items() if value is not None)
    return Severity(total / available, components, round(available, 6))


def _find_header(rows: list[list[Any]], id_column: str, path: Path) -> int:
    for index, row in enumerate(rows[:10]):
        if any(str(cell).strip() == id_column for cell in row if cell is not None):
            return index
    raise InputError(path, f"no {id_column} column in the first 10 rows of the clinical sheet")


def _read_rows(path: Path) -> list[list[Any]]:
    suffix = path.suffix.lower()
    try:
        if suffix in {".xlsx", ".xlsm"}:
            import openpyxl

            workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
            try:
                sheet = workbook.worksheets[0]
                return [list(row) for row in sheet.iter_rows(values_only=True)]
            finally:
                workbook.close()
        if suffix in {".csv", ".tsv", ".txt"}:
            text = path.read_text(encoding="utf-8-sig")
            dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t") if text.strip() else csv.excel
            return [row for row in csv.reader(text.splitlines(), dialect)]
    except InputError:
        raise
    except Exception as exc:
        raise InputError(path, f"cannot read the clinical sheet ({type(exc).__name__}: {exc})") from exc
    raise InputError(path, f"unsupported clinical sheet format {suffix!r} (use .xlsx or .csv)")


def read_clinical_sheet(path: str | os.PathLike[str], id_column: str = ID_COLUMN) -> dict[str, dict[str, Any]]:
    """Read a clinical spreadsheet (xlsx or csv) into patient id → {column: value}.

    The header is the first row (of the first ten) that holds `id_column`; rows without an id are skipped.

    Raises:
        InputError: missing file, unreadable sheet, no id column, or a patient id listed twice.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "clinical sheet not found")
    rows = _read_rows(path)
    header_index = _find_header(rows, id_column, path)
    header = [str(cell).strip() if cell is not None else "" for cell in rows[header_index]]
    id_index = header.index(id_column)
    table: dict[str, dict[str, Any]] = {}
    for row in rows[header_index + 1 :]:
        if id_index >= len(row) or _is_missing(row[id_index]):
            continue
        patient = str(row[id_index]).strip()
        if patient in table:
            raise InputError(path, f"patient {patient} appears twice in column {id_column}")
        table[patient] = {name: row[i] if i < len(row) else None for i, name in enumerate(header) if name}
    return table


CLINICAL_CSV_COLUMNS = ("patient_id", "severity", "available_weight") + tuple(
    f"item_{item.name}" for item in SEVERITY_ITEMS
)


def severity_table_rows(severities: Iterable[tuple[str, Severity]]) -> list[dict[str, str]]:
    """Format (patient id, severity) pairs as the rows of the dataset's `clinical.csv`."""
    rows = []
    for patient, severity in severities:
        row = {
            "patient_id": patient,
            "severity": "" if severity.value is None else f"{severity.value:.6f}",
            "available_weight": f"{severity.available_weight:.2f}",
        }
        for item in SEVERITY_ITEMS:
            value = severity.components[item.name]
            row[f"item_{item.name}"] = "" if value is None else f"{value:.6f}"
        rows.append(row)
    return rows
