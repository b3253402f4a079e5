"""LiverVAE: liver and liver-tumour CT segmentation built on MONAI."""

__version__ = "0.1.0"
