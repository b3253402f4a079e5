"""Dataset adapters, validation, summaries, folds, clinical severity and the synthetic phantom cohort."""
