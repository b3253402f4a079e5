"""Batch inference over folders, DICOM trees and manifests: resumable, in one process or on a Dask cluster."""

from livervae.batch.cases import SERIES_RULE, BatchCase, discover
from livervae.batch.manifest import Manifest
from livervae.batch.runner import BatchResult, format_batch_result, run_batch
from livervae.batch.worker import PredictorSettings

__all__ = [
    "SERIES_RULE",
    "BatchCase",
    "BatchResult",
    "Manifest",
    "PredictorSettings",
    "discover",
    "format_batch_result",
    "run_batch",
]
