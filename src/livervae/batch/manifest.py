"""The batch manifest: one row per case (input, output, status, reason, volumes, quality, seconds, worker), on disk.

`quality_score` and `needs_review` (yes / no) are filled when the run writes uncertainty maps (`--uncertainty`);
manifests written before those columns existed load with them empty.

`<out>/manifest.csv` is rewritten atomically (temporary file, then rename), never edited in place. Between
rewrites each finished case is appended to `<out>/manifest.journal` (one JSON line, flushed and fsynced) so a
run killed at any moment loses no finished case: the next run folds the journal into the CSV before it starts.
Rewriting the whole CSV after every case would cost O(cases²) over an archive; the journal keeps each update O(1)
and the CSV is compacted every `compact_seconds`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterable

from livervae.io.atomic import write_text_atomic

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.csv"
JOURNAL_NAME = "manifest.journal"
COLUMNS = (
    "case",
    "input",
    "series_uid",
    "output",
    "status",
    "reason",
    "liver_ml",
    "tumor_ml",
    "lesion_count",
    "quality_score",
    "needs_review",
    "seconds",
    "worker",
    "finished_at",
)
DONE, FAILED, SKIPPED, PENDING = "done", "failed", "skipped", "pending"
STATUSES = (DONE, FAILED, SKIPPED, PENDING)


def _clean(row: dict[str, Any]) -> dict[str, str]:
    """The row with every column present, as text; a reason is kept to one line."""
    cleaned = {column: "" if row.get(column) is None else str(row.get(column)) for column in COLUMNS}
    cleaned["reason"] = " ".join(cleaned["reason"].split())
    if cleaned["status"] not in STATUSES:
        raise ValueError(f"unknown manifest status {cleaned['status']!r}")
    return cleaned


class Manifest:
    """The rows of one batch output folder, keyed by case, with durable updates.

    Args:
        out_dir: the batch output folder; the manifest and its journal live at its top.
        compact_seconds: at most this long between rewrites of `manifest.csv` while cases finish.
    """

    def __init__(self, out_dir: str | os.PathLike[str], compact_seconds: float = 5.0) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / MANIFEST_NAME
        self.journal_path = self.out_dir / JOURNAL_NAME
        self.compact_seconds = compact_seconds
        self.rows: dict[str, dict[str, str]] = {}
        self._journal: io.TextIOWrapper | None = None
        self._last_compact = time.monotonic()
        self._load()

    def _load(self) -> None:
        if self.path.is_file():
            with open(self.path, newline="", encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    self.rows[row["case"]] = _clean(row)
        if self.journal_path.is_file():
            with open(self.journal_path, encoding="utf-8") as handle:
                for line in handle:
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        # The last line of a journal killed mid-write; that case was not finished durably.
                        logger.warning("%s: ignoring an incomplete last line", self.journal_path)
                        continue
                    self.rows[row["case"]] = _clean(row)

    def status(self, case: str) -> str | None:
        """The recorded status of `case`, or None when it has no row."""
        row = self.rows.get(case)
        return row["status"] if row else None

    def is_done(self, case: str) -> bool:
        """Whether `case` finished before and its output is still there (a deleted output is redone)."""
        row = self.rows.get(case)
        return bool(row and row["status"] == DONE and row["output"] and Path(row["output"]).exists())

    def set_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        """Add or replace rows without journaling (the run's plan); call `compact` to write them."""
        for row in rows:
            cleaned = _clean(row)
            self.rows[cleaned["case"]] = cleaned

    def record(self, row: dict[str, Any]) -> None:
        """Store one finished case durably (journal line, fsynced), compacting when it is time."""
        cleaned = _clean(row)
        self.rows[cleaned["case"]] = cleaned
        if self._journal is None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._journal = open(self.journal_path, "a", encoding="utf-8")
        self._journal.write(json.dumps(cleaned) + "\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())
        if time.monotonic() - self._last_compact >= self.compact_seconds:
            self.compact()

    def compact(self) -> Path:
        """Rewrite `manifest.csv` atomically from every row, then drop the journal it now holds."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for case in sorted(self.rows):
            writer.writerow(self.rows[case])
        write_text_atomic(self.path, buffer.getvalue())
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        # Replaying a journal over the CSV that already holds it is harmless, so a kill here loses nothing.
        self.journal_path.unlink(missing_ok=True)
        self._last_compact = time.monotonic()
        return self.path

    def counts(self) -> dict[str, int]:
        """Rows per status."""
        counts = dict.fromkeys(STATUSES, 0)
        for row in self.rows.values():
            counts[row["status"]] += 1
        return counts

    def close(self) -> Path:
        """Final compaction."""
        return self.compact()
