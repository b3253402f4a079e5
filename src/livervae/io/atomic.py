"""Write outputs so that a crash, a bad input or a full disk never leaves a half-written file or folder."""

from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from livervae.errors import OutputError


def _check_parent_writable(path: Path) -> None:
    parent = path.parent
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{parent}: cannot create the output folder ({exc.strerror})") from exc
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{parent}: output folder is not writable")


def _describe_os_error(path: Path, exc: OSError) -> OutputError:
    if exc.errno == errno.ENOSPC:
        return OutputError(f"{path}: disk full while writing; nothing was kept")
    return OutputError(f"{path}: cannot write ({exc.strerror or exc})")


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary name next to `path`; rename it onto `path` only if the block succeeds.

    The temporary name keeps the file's suffixes (e.g. `.nii.gz`) so writers that choose a format from the
    extension still work. On any exception the temporary file is removed and `path` is left untouched.
    """
    target = Path(path)
    _check_parent_writable(target)
    tmp = target.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{target.name}")
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"{target}: the writer produced no file")
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _describe_os_error(target, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write `text` to `path` atomically and return the path."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)


def write_json_atomic(path: str | os.PathLike[str], obj: Any, indent: int = 2) -> Path:
    """Write `obj` as indented JSON to `path` atomically and return the path."""
    return write_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def check_output_dir(out_dir: str | os.PathLike[str], overwrite: bool) -> Path:
    """Refuse an existing, non-empty output folder unless `overwrite` is set; return the resolved path."""
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputError(f"{out}: output folder exists and is not empty (use --overwrite to replace it)")
    _check_parent_writable(out)
    return out


@contextmanager
def atomic_directory(out_dir: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a staging folder next to `out_dir`; it becomes `out_dir` only if the block succeeds.

    With `overwrite`, an existing `out_dir` is replaced only after the new one is complete, so a failure
    keeps the old results. On any exception the staging folder is deleted.
    """
    out = check_output_dir(out_dir, overwrite)
    staging = out.with_name(f".{out.name}.partial-{uuid.uuid4().hex[:12]}")
    staging.mkdir()
    try:
        yield staging
        if out.exists():
            old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:12]}")
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise _describe_os_error(out, exc) from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
