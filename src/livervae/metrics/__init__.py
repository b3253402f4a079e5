"""Segmentation, lesion-wise and summary metrics used by `evaluate.json` and `livervae eval`."""
