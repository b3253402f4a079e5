"""Shared synthetic cases: generated once per test session (each takes seconds; the subjects load once)."""

from __future__ import annotations

import pytest

from livervae.data.synthetic.label_maps import subjects_dir


@pytest.fixture(scope="session")
def require_subjects() -> None:
    """Skip when the shared TotalSegmentator subjects are not there (they are in CI and in this project)."""
    if not (subjects_dir() / "s0004" / "segmentations" / "liver.nii.gz").is_file():
        pytest.skip("shared data folder with totalsegmentator_subjects not found (set LIVERVAE_DATA_DIR)")


@pytest.fixture(scope="session")
def pool_cases(require_subjects):
    """Four cases of the training-pool preset (2 mm), cohort seed 3: (image, label, truth, tissues) each."""
    from livervae.data.synthetic.generator import SyntheticConfig, generate_synthetic_case

    config = SyntheticConfig.training_pool()
    return [generate_synthetic_case(index, 3, config) for index in range(4)]
