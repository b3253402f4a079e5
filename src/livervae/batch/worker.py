"""What a batch worker does with one case: read, predict, write, and report one manifest row.

A `CaseRunner` holds the worker's model (loaded once, on first use) and a lock around the model call. Each worker
runs `CASES_IN_FLIGHT` cases at a time on threads, so while one case holds the model the next is being read (and
the previous written): reading, staging and writing are numpy / SimpleITK / file work that releases the GIL.
In a Dask cluster the runner lives in a worker plugin (`PredictorPlugin`), so a worker restarted by its nanny
loads the model again by itself.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from distributed import WorkerPlugin, get_worker

from livervae.batch.cases import BatchCase
from livervae.batch.manifest import DONE, FAILED, SKIPPED
from livervae.bundle import BundlePredictor, label_volume
from livervae.errors import InputError, NotCTError, livervae_cause
from livervae.infer import model_input, read_input, uncertainty_path_for, write_prediction

logger = logging.getLogger(__name__)

CASES_IN_FLIGHT = 2
PLUGIN_NAME = "livervae-predictor"


@dataclass(frozen=True)
class PredictorSettings:
    """How every worker builds its predictor and what it writes (picklable, sent to Dask workers once).

    Attributes:
        bundle: bundle name (or path with `allow_external`).
        model_path: weights (default: the bundle's `models/model.pt`).
        device: "cpu", "cuda", "cuda:1"...; None picks CUDA when the worker has it.
        torch_threads: intra-op threads of the worker's model (None leaves torch's default).
        overrides: bundle config overrides.
        overlay: write the overlay PNG next to each output.
        uncertainty: write each case's uncertainty maps beside its output (`infer.uncertainty_path_for`) and its
            quality score and review flag into its manifest row.
    """

    bundle: str
    model_path: str | None = None
    device: str | None = None
    torch_threads: int | None = None
    overrides: tuple[tuple[str, Any], ...] = ()
    allow_external: bool = False
    overlay: bool = True
    uncertainty: bool = False


def _failure_reason(exc: BaseException, source: Path) -> str:
    """One line; the input's own path is left out (the manifest's `input` column holds it)."""
    cause = livervae_cause(exc)
    if isinstance(cause, InputError) and cause.path == str(source):
        return cause.problem
    if cause is not None:
        return str(cause)
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}".rstrip(": ")


class CaseRunner:
    """One worker's model and the code that runs a case through it.

    Args:
        settings: how to build the predictor.
        worker: the name recorded in the manifest's `worker` column.
        device: overrides `settings.device` (a local GPU cluster gives each worker its own GPU).
    """

    def __init__(self, settings: PredictorSettings, worker: str, device: str | None = None) -> None:
        self.settings = settings
        self.worker = worker
        self.device = device or settings.device
        self._predictor = None
        self._model_lock = threading.Lock()

    def predictor(self):
        """The worker's `BundlePredictor`, built on first use (call with the model lock held)."""
        if self._predictor is None:
            if self.settings.torch_threads:
                torch.set_num_threads(self.settings.torch_threads)
            self._predictor = BundlePredictor(
                self.settings.bundle,
                model_path=self.settings.model_path,
                device=self.device,
                overrides=dict(self.settings.overrides),
                allow_external=self.settings.allow_external,
            )
            logger.info("%s: model loaded on %s", self.worker, self._predictor.device)
        return self._predictor

    def run(self, case: BatchCase) -> dict[str, Any]:
        """Segment one case; return its manifest row (done, or failed with the one-line reason). Never raises."""
        start = time.perf_counter()
        row = case.row(worker=self.worker)
        try:
            image, series = read_input(case.input, case.series_uid or None, case.files)
            uncertain = None
            with model_input(case.input, image) as image_file:
                with self._model_lock:
                    predictor = self.predictor()
                    if self.settings.uncertainty:
                        uncertain = predictor.predict_with_uncertainty(image_file)
                        label = label_volume(uncertain.label, image)
                    else:
                        label = predictor.predict_volume(image_file, image)
            maps = uncertainty_path_for(case.output) if uncertain is not None else None
            summary = write_prediction(
                label, image, series, case.input, case.output, predictor, self.settings.overlay, start, uncertain, maps
            )
            row.update(
                status=DONE,
                liver_ml=summary["liver_ml"],
                tumor_ml=summary["tumor_ml"],
                lesion_count=summary["lesion_count"],
            )
            if "quality" in summary:
                quality = summary["quality"]
                row.update(quality_score=quality["score"], needs_review="yes" if quality["needs_review"] else "no")
        except Exception as exc:  # one bad study never stops the others
            # A label map or MR volume beside the CTs is not a failure, as a non-CT DICOM series is not.
            status = SKIPPED if isinstance(livervae_cause(exc), NotCTError) else FAILED
            row.update(status=status, reason=_failure_reason(exc, case.input), output="")
            if status == FAILED:
                logger.warning("%s failed: %s", case.case, row["reason"])
        row["seconds"] = round(time.perf_counter() - start, 2)
        row["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return row


def local_worker_name() -> str:
    """`<host>:<pid>` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


class PredictorPlugin(WorkerPlugin):
    """Dask worker plugin giving each worker one `CaseRunner` (one model per worker process).

    With `settings.device == "cuda"` and several GPUs on a machine, workers named 0, 1, ... (a `LocalCluster`)
    take `cuda:<name mod GPU count>`; on a cluster started by hand, give each worker its GPU with
    `CUDA_VISIBLE_DEVICES` and `--resources GPU=1`.
    """

    name = PLUGIN_NAME

    def __init__(self, settings: PredictorSettings) -> None:
        self.settings = settings
        self.runner: CaseRunner | None = None

    def setup(self, worker) -> None:  # noqa: D102 (Dask's hook)
        device = self.settings.device
        if device == "cuda":
            count = torch.cuda.device_count()
            if count > 1 and isinstance(worker.name, int):
                device = f"cuda:{worker.name % count}"
        self.runner = CaseRunner(self.settings, worker=local_worker_name(), device=device)


def run_case_on_worker(case: BatchCase) -> dict[str, Any]:
    """The Dask task: run `case` with the calling worker's `PredictorPlugin` runner."""
    plugin = get_worker().plugins[PLUGIN_NAME]
    return plugin.runner.run(case)
