"""Small helpers the adapters share."""

from __future__ import annotations

from pathlib import Path

from livervae.errors import InputError


def require_source(source: Path | None, fmt: str) -> Path:
    """Return `source` if it exists, else refuse with a message naming the format that needs it."""
    if source is None:
        raise InputError(None, f"format {fmt!r} needs --source <path>")
    source = Path(source).expanduser()
    if not source.exists():
        raise InputError(source, "source not found")
    return source
