"""The batch manifest: durable rows through a journal, atomic CSV compaction, resume semantics."""

from __future__ import annotations

import csv

import pytest

from livervae.batch.manifest import COLUMNS, JOURNAL_NAME, MANIFEST_NAME, Manifest


def _row(case: str, status: str = "done", output: str = "", reason: str = "") -> dict:
    return {"case": case, "input": f"/in/{case}", "output": output, "status": status, "reason": reason, "seconds": 1.5}


def _csv_rows(path):
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == COLUMNS
        return list(reader)


def test_finished_cases_survive_a_kill_before_compaction(tmp_path):
    output = tmp_path / "a.nii.gz"
    output.write_bytes(b"label")
    manifest = Manifest(tmp_path, compact_seconds=3600)
    manifest.set_rows([_row("a", "pending", str(output)), _row("b", "pending")])
    manifest.compact()
    manifest.record(_row("a", "done", str(output)))
    manifest.record(_row("b", "failed", reason="cannot read\nas NIfTI"))
    # No close(): the process was killed. The CSV still says pending, the journal holds both results.
    assert [r["status"] for r in _csv_rows(tmp_path / MANIFEST_NAME)] == ["pending", "pending"]
    with open(tmp_path / JOURNAL_NAME, "a") as journal:
        journal.write('{"case": "c", "stat')  # a line cut by the kill
    reopened = Manifest(tmp_path)
    assert reopened.status("a") == "done" and reopened.is_done("a")
    assert reopened.status("b") == "failed" and reopened.rows["b"]["reason"] == "cannot read as NIfTI"
    assert reopened.status("c") is None
    reopened.close()
    assert not (tmp_path / JOURNAL_NAME).exists()
    rows = _csv_rows(tmp_path / MANIFEST_NAME)
    assert [(r["case"], r["status"], r["seconds"]) for r in rows] == [("a", "done", "1.5"), ("b", "failed", "1.5")]


def test_done_case_whose_output_was_deleted_is_not_done(tmp_path):
    output = tmp_path / "a.nii.gz"
    output.write_bytes(b"label")
    manifest = Manifest(tmp_path)
    manifest.record(_row("a", "done", str(output)))
    manifest.close()
    assert Manifest(tmp_path).is_done("a")
    output.unlink()
    assert not Manifest(tmp_path).is_done("a")


def test_compaction_happens_on_its_interval_and_counts_statuses(tmp_path):
    manifest = Manifest(tmp_path, compact_seconds=0.0)
    manifest.record(_row("a", "skipped", reason="Modality MR, not CT"))
    assert not (tmp_path / JOURNAL_NAME).exists() and len(_csv_rows(tmp_path / MANIFEST_NAME)) == 1
    manifest.record(_row("b", "failed"))
    assert manifest.counts() == {"done": 0, "failed": 1, "skipped": 1, "pending": 0}


def test_unknown_status_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown manifest status 'finished'"):
        Manifest(tmp_path).record(_row("a", "finished"))


def test_a_manifest_written_before_the_quality_columns_still_loads(tmp_path):
    output = tmp_path / "a.nii.gz"
    output.write_bytes(b"label")
    old_columns = [c for c in COLUMNS if c not in ("quality_score", "needs_review")]
    with open(tmp_path / MANIFEST_NAME, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=old_columns)
        writer.writeheader()
        writer.writerow({**{c: "" for c in old_columns}, "case": "a", "output": str(output), "status": "done"})
    manifest = Manifest(tmp_path)
    assert manifest.is_done("a") and manifest.rows["a"]["needs_review"] == ""
    manifest.close()
    assert [r["case"] for r in _csv_rows(tmp_path / MANIFEST_NAME)] == ["a"]  # rewritten with every column
