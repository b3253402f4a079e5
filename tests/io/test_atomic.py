import errno
import os

import pytest

from livervae.errors import OutputError
from livervae.io.atomic import atomic_directory, atomic_path, check_output_dir, write_json_atomic


def test_atomic_path_renames_only_on_success(tmp_path):
    target = tmp_path / "out.nii.gz"
    with atomic_path(target) as tmp:
        assert tmp.name.endswith(".nii.gz") and tmp.parent == tmp_path
        tmp.write_bytes(b"done")
        assert not target.exists()
    assert target.read_bytes() == b"done"
    assert os.listdir(tmp_path) == ["out.nii.gz"]


def test_atomic_path_keeps_old_file_and_removes_temporary_on_error(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer crashed")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_disk_full_is_reported_and_leaves_nothing(tmp_path):
    target = tmp_path / "label.nii.gz"
    with pytest.raises(OutputError, match="disk full"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert os.listdir(tmp_path) == []


def test_output_under_a_file_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot create the output folder"):
        write_json_atomic(blocker / "sub" / "summary.json", {})


def test_atomic_directory_appears_complete_or_not_at_all(tmp_path):
    out = tmp_path / "dataset"
    with pytest.raises(ValueError):
        with atomic_directory(out) as staging:
            (staging / "images").mkdir()
            raise ValueError("bad case")
    assert os.listdir(tmp_path) == []
    with atomic_directory(out) as staging:
        (staging / "datalist.json").write_text("{}")
    assert os.listdir(out) == ["datalist.json"]


def test_existing_output_needs_overwrite_and_survives_a_failed_overwrite(tmp_path):
    out = tmp_path / "dataset"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    with pytest.raises(OutputError, match="--overwrite"):
        check_output_dir(out, overwrite=False)
    with pytest.raises(RuntimeError):
        with atomic_directory(out, overwrite=True) as staging:
            (staging / "new.txt").write_text("new")
            raise RuntimeError("failed half way")
    assert sorted(os.listdir(tmp_path)) == ["dataset"]
    assert (out / "old.txt").read_text() == "keep me"
    with atomic_directory(out, overwrite=True) as staging:
        (staging / "new.txt").write_text("new")
    assert os.listdir(out) == ["new.txt"]
    assert sorted(os.listdir(tmp_path)) == ["dataset"]
