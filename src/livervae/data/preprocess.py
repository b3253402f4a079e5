"""Turn any supported source into one normalised dataset folder (the `preprocess` command)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from livervae.data.formats import FORMAT_NAMES, SourceOptions, get_adapter
from livervae.data.writer import DatasetWriter
from livervae.errors import InputError
from livervae.io.atomic import atomic_directory

logger = logging.getLogger(__name__)


def preprocess(
    fmt: str,
    source: Path | None,
    out: Path,
    options: SourceOptions | None = None,
    n_folds: int = 5,
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Convert `source` in format `fmt` into a normalised dataset at `out` and return its summary.

    The dataset is built in a staging folder and renamed to `out` only when every case has been validated
    and written; on any error nothing is left at `out` (an existing dataset there is kept).

    Raises:
        InputError: unknown format or any bad input case (the message names the file and the fault).
        OutputError: `out` exists (without `overwrite`) or cannot be written.
    """
    if fmt not in FORMAT_NAMES:
        raise InputError(None, f"unknown format {fmt!r}; choose one of {', '.join(FORMAT_NAMES)}")
    adapter = get_adapter(fmt)
    options = options or SourceOptions()
    start = time.perf_counter()
    out = Path(out)
    with atomic_directory(out, overwrite=overwrite) as staging:
        writer = DatasetWriter(staging, name=out.name, source_format=fmt)
        for case in adapter(None if source is None else Path(source), options):
            writer.add(case)
        summary = writer.finish(n_folds=n_folds, seed=seed)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    logger.info("wrote %d case(s) to %s in %.1f s", len(summary["cases"]), out, summary["seconds"])
    return summary
