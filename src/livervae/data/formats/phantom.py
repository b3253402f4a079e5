"""`phantom`: the synthetic abdominal-CT cohort with exact labels and a clinical sheet (no source needed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from livervae.data.case import Case
from livervae.data.formats import SourceOptions
from livervae.data.phantom import generate_cohort


def iter_cases(source: Path | None, options: SourceOptions) -> Iterator[Case]:
    """Generate `options.phantom_n` cases deterministically from `options.phantom_seed`."""
    yield from generate_cohort(options.phantom_n, options.phantom_seed)
