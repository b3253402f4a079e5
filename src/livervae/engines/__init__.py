"""Ignite iteration functions and handlers the bundles need beyond MONAI's."""
