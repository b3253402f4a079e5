"""Treat a folder, a .zip or a .tar(.gz) the same way: the layouts public datasets ship in."""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from livervae.errors import InputError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


def find_folder_or_archive(parent: Path, stem: str) -> Path | None:
    """Return `parent/stem` as a folder, or the first `parent/stem.<archive suffix>` that exists."""
    folder = parent / stem
    if folder.is_dir():
        return folder
    for suffix in ARCHIVE_SUFFIXES:
        candidate = parent / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def iter_files(path: Path) -> Iterator[tuple[PurePosixPath, io.BufferedIOBase]]:
    """Yield (relative path, readable file object) for every regular file in a folder or archive.

    Archives are read in one sequential pass, which is what makes reading members of a .tar.gz fast.
    """
    try:
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs.sort()
                for name in sorted(names):
                    full = Path(root) / name
                    with open(full, "rb") as handle:
                        yield PurePosixPath(full.relative_to(path).as_posix()), handle
        elif path.name.lower().endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if not info.is_dir():
                        with archive.open(info) as handle:
                            yield PurePosixPath(info.filename), handle  # type: ignore[misc]
        elif path.name.lower().endswith((".tar", ".tar.gz", ".tgz")):
            with tarfile.open(path, "r:*") as archive:
                for member in archive:
                    if member.isfile():
                        handle = archive.extractfile(member)
                        if handle is not None:
                            yield PurePosixPath(member.name.lstrip("./")), handle  # type: ignore[misc]
        else:
            raise InputError(path, "neither a folder nor a .zip/.tar/.tar.gz archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise InputError(path, f"cannot read archive ({type(exc).__name__}: {exc})") from exc


@contextmanager
def as_folder(path: Path) -> Iterator[Path]:
    """Yield `path` itself if it is a folder, else a temporary folder holding the archive's extracted files."""
    if path.is_dir():
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="livervae-") as tmp:
        root = Path(tmp)
        for relative, handle in iter_files(path):
            if ".." in relative.parts or relative.is_absolute():
                raise InputError(path, f"archive member {relative} escapes the archive folder")
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as out:
                out.write(handle.read())
        yield root
