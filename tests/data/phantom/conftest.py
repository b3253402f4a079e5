"""Shared fixture of the phantom tests: one small cohort, generated once for the whole folder."""

from __future__ import annotations

import pytest

from livervae.data.phantom import PhantomConfig, generate_case

SMALL = PhantomConfig.small()
COHORT_SEED = 0
COHORT_SIZE = 16
KEPT_MASKS = ("body", "vessels", "lungs", "stomach", "spleen", "spine", "kidney_right", "kidney_left")


# Several modules here use it. Pytest's "package" scope means the whole session in a folder without
# `__init__.py` (the convention of tests/), so it is session-scoped outright: 16 cases of about 4 MB each.
@pytest.fixture(scope="session")
def cohort() -> list[tuple]:
    """16 small-config cases of seed 0 as (image, label, truth, a few masks)."""
    cases = []
    for index in range(COHORT_SIZE):
        image, label, truth, masks = generate_case(index, COHORT_SEED, SMALL, return_masks=True)
        cases.append((image, label, truth, {name: masks[name] for name in KEPT_MASKS}))
    return cases
