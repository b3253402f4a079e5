"""`livervae infer -i <folder | DICOM tree | manifest.csv> -o <folder>`: segment every case, resumably.

One run: find the cases (`livervae.batch.cases`), write the plan into `<out>/manifest.csv` (done cases from an
earlier run stay done and are not redone; failed ones are retried; new ones are pending), then run the rest and
record each case as it finishes (`livervae.batch.manifest`). Cases run

- in this process (`workers=1`, no scheduler): one model, `CASES_IN_FLIGHT` cases on threads so reading and
  writing overlap the model call;
- on a local Dask cluster of `workers` processes, each with its own model (`PredictorPlugin`);
- on an existing Dask cluster (`scheduler="tcp://host:8786"`): the workers must have LiverVAE installed and see
  the inputs and the output folder at the same paths.

A worker that dies mid-case is replaced by its nanny and Dask runs the case again elsewhere; only the client
writes the manifest, so each case is recorded once, when its result arrives.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from livervae.batch.cases import BatchCase, Discovery, OutputFormat, discover
from livervae.batch.manifest import DONE, FAILED, PENDING, SKIPPED, Manifest
from livervae.batch.worker import (
    CASES_IN_FLIGHT,
    CaseRunner,
    PredictorPlugin,
    PredictorSettings,
    local_worker_name,
    run_case_on_worker,
)
from livervae.errors import InputError, OutputError

logger = logging.getLogger(__name__)

# Dask runs a case again after a worker died on it; after this many deaths the case is recorded as failed.
ALLOWED_WORKER_DEATHS = 3


@dataclass
class BatchResult:
    """What one batch run did."""

    manifest: Path
    counts: dict[str, int]
    ran: int
    seconds: float
    failures: list[tuple[str, str]] = field(default_factory=list)
    needs_review: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No case of the manifest is failed."""
        return self.counts.get(FAILED, 0) == 0


def _plan(discovery: Discovery, manifest: Manifest) -> list[BatchCase]:
    """Write the run's plan into the manifest and return the cases still to run."""
    rows: list[dict[str, Any]] = []
    for item in discovery.skipped:
        status = FAILED if item.failed else SKIPPED
        rows.append(
            {
                "case": item.case,
                "input": item.input,
                "series_uid": item.series_uid,
                "status": status,
                "reason": item.reason,
            }
        )
    todo = []
    for case in discovery.cases:
        # Done (output still there) or found not to be a CT by a worker: settled, not run again.
        if manifest.is_done(case.case) or manifest.status(case.case) == SKIPPED:
            continue
        todo.append(case)
        rows.append(case.row(status=PENDING))
    # A failed or pending row whose input is gone (deleted, renamed) no longer describes the archive; done rows
    # stay, as the record of outputs that exist.
    found = {row["case"] for row in rows} | {case.case for case in discovery.cases}
    for case in [c for c, row in manifest.rows.items() if c not in found and row["status"] != DONE]:
        del manifest.rows[case]
    manifest.set_rows(rows)
    manifest.compact()
    return todo


@contextmanager
def _local_results(cases: list[BatchCase], settings: PredictorSettings) -> Iterator[Iterator[dict[str, Any]]]:
    """Run `cases` in this process, `CASES_IN_FLIGHT` at a time around one model."""
    runner = CaseRunner(settings, worker=local_worker_name())
    with concurrent.futures.ThreadPoolExecutor(CASES_IN_FLIGHT, thread_name_prefix="livervae-case") as pool:
        futures = [pool.submit(runner.run, case) for case in cases]
        try:
            yield (future.result() for future in concurrent.futures.as_completed(futures))
        finally:
            for future in futures:
                future.cancel()


def _quiet_dask() -> None:
    """Keep Dask's per-event INFO lines (also those of spawned workers) out of the user's terminal."""
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    logging.getLogger("distributed").setLevel(logging.WARNING)


@contextmanager
def _dask_results(
    cases: list[BatchCase], settings: PredictorSettings, workers: int, scheduler: str | None
) -> Iterator[Iterator[dict[str, Any]]]:
    """Run `cases` as Dask tasks on a local cluster of `workers` processes or on the cluster at `scheduler`."""
    import dask
    from distributed import Client, LocalCluster, as_completed

    _quiet_dask()
    gpu = (settings.device or "").startswith("cuda")
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_WORKER_DEATHS - 1}):
        if scheduler:
            cluster = None
            client = Client(scheduler)
        else:
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=CASES_IN_FLIGHT,
                processes=True,
                dashboard_address=None,
                resources={"GPU": 1} if gpu else None,
            )
            client = Client(cluster)
        try:
            client.register_plugin(PredictorPlugin(settings), name=PredictorPlugin.name)
            # A GPU worker advertises GPU=1; each case asks for a share, so CASES_IN_FLIGHT cases overlap there.
            resources = {"GPU": 1 / CASES_IN_FLIGHT} if gpu else None
            futures = client.map(run_case_on_worker, cases, pure=False, resources=resources)
            by_key = {future.key: case for future, case in zip(futures, cases)}

            def results() -> Iterator[dict[str, Any]]:
                for future in as_completed(futures):
                    try:
                        yield future.result()
                    except Exception as exc:  # KilledWorker: the case took down every worker it ran on
                        case = by_key[future.key]
                        reason = (
                            f"{type(exc).__name__}: the worker process died on this case {ALLOWED_WORKER_DEATHS} times"
                        )
                        yield case.row(status=FAILED, reason=reason)

            yield results()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def run_batch(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    settings: PredictorSettings,
    workers: int = 1,
    scheduler: str | None = None,
    all_series: bool = False,
    output_format: OutputFormat = "auto",
    progress: bool = True,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> BatchResult:
    """Segment every case of `source` into `out_dir`, keeping `<out_dir>/manifest.csv` up to date.

    Args:
        source: a folder (NIfTI files, DICOM tree) or a manifest CSV (`input`, optional `series_uid`, `output`).
        out_dir: the output folder; results mirror the input names below it.
        settings: the model every worker loads once.
        workers: 1 runs in this process; more start a local Dask cluster of that many processes.
        scheduler: address of an existing Dask scheduler (then `workers` is ignored).
        all_series: segment every CT series of a study instead of the one `SERIES_RULE` picks.
        output_format: "auto" (DICOM-SEG for DICOM input, NIfTI otherwise), "nifti" or "dicom-seg".
        progress: show a progress bar on stderr.
        on_result: called with each finished case's manifest row (after it is recorded).

    Raises:
        InputError: the input cannot be walked or read as a manifest.
        OutputError: the output folder cannot be created.
    """
    source, out = Path(source), Path(out_dir)
    if workers < 1:
        raise InputError(None, f"--workers must be at least 1, got {workers}")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: batch output must be a folder")
    start = time.perf_counter()
    discovery = discover(source, out, all_series, output_format)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create the output folder ({exc.strerror})") from exc
    manifest = Manifest(out)
    todo = _plan(discovery, manifest)
    already = len(discovery.cases) - len(todo)
    logger.info(
        "%d case(s) found: %d settled before, %d to run; %d input(s) skipped or unreadable (see %s)",
        len(discovery.cases),
        already,
        len(todo),
        len(discovery.skipped),
        manifest.path,
    )
    if workers > 1 and settings.torch_threads is None and not scheduler:
        settings = replace(settings, torch_threads=max(1, (os.cpu_count() or 1) // workers))
    failures: list[tuple[str, str]] = []
    done = failed = ran = 0
    bar = tqdm(total=len(todo), unit="case", disable=not progress or not todo, file=sys.stderr, dynamic_ncols=True)
    try:
        if todo:
            use_dask = scheduler is not None or workers > 1
            results = _dask_results(todo, settings, workers, scheduler) if use_dask else _local_results(todo, settings)
            with results as rows, logging_redirect_tqdm():
                for row in rows:
                    manifest.record(row)
                    ran += 1
                    if row["status"] == DONE:
                        done += 1
                    elif row["status"] == FAILED:
                        failed += 1
                        failures.append((row["case"], row["reason"]))
                    bar.update(1)
                    bar.set_postfix(done=done, failed=failed, refresh=False)
                    if on_result is not None:
                        on_result(row)
    finally:
        bar.close()
        manifest.close()
    failures += [(s.case, s.reason) for s in discovery.skipped if s.failed]
    review = [case for case, row in manifest.rows.items() if row["status"] == DONE and row["needs_review"] == "yes"]
    seconds = round(time.perf_counter() - start, 2)
    return BatchResult(manifest.path, manifest.counts(), ran, seconds, failures, review)


def format_batch_result(result: BatchResult, limit: int = 10) -> str:
    """A short table: cases per status, the first failures with their reasons, and where the manifest is."""
    counts = result.counts
    lines = [
        f"{'status':<8} {'cases':>6}",
        *(
            f"{status:<8} {counts.get(status, 0):>6}"
            for status in (DONE, FAILED, SKIPPED, PENDING)
            if counts.get(status)
        ),
        f"ran {result.ran} case(s) in {result.seconds:.1f} s; manifest: {result.manifest}",
    ]
    if result.needs_review:
        lines.append(f"needs review: {len(result.needs_review)} done case(s) (needs_review = yes in the manifest)")
    for case, reason in result.failures[:limit]:
        lines.append(f"failed: {case}: {reason}")
    if len(result.failures) > limit:
        lines.append(f"... and {len(result.failures) - limit} more failed (see the manifest)")
    return "\n".join(lines)
