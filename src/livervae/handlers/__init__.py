"""Ignite/MONAI event handlers the bundles attach: saving, resuming, stopping, settings, progress and reports."""

from livervae.handlers.checkpoint_saver import AtomicCheckpointSaver
from livervae.handlers.early_stopping import enable_early_stopping
from livervae.handlers.patch_report import PatchReportHandler
from livervae.handlers.progress import ProgressBar
from livervae.handlers.resume import checkpoint_epoch, enable_resume, latest_checkpoint
from livervae.handlers.segmentation_report import SegmentationReportHandler
from livervae.handlers.settings_record import SettingsRecord, check_settings

__all__ = [
    "AtomicCheckpointSaver",
    "PatchReportHandler",
    "ProgressBar",
    "SegmentationReportHandler",
    "SettingsRecord",
    "check_settings",
    "checkpoint_epoch",
    "enable_early_stopping",
    "enable_resume",
    "latest_checkpoint",
]
