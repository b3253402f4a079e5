"""`livervae.data.phantom.settings`: the configuration's checks and the truth record's serialisability."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from livervae.data.phantom import PhantomConfig, PhantomTruth, generate_case

SMALL = PhantomConfig.small()


def test_truth_is_json_serialisable() -> None:
    truth = generate_case(1, 0, SMALL)[2]
    assert isinstance(truth, PhantomTruth)
    restored = json.loads(json.dumps(asdict(truth)))
    assert restored["liver_voxels"] == truth.liver_voxels
    assert len(restored["lesions"]) == len(truth.lesions)
    assert restored["lesions"][0]["n_voxels"] == truth.lesions[0].n_voxels


def test_invalid_config_is_refused() -> None:
    with pytest.raises(ValueError):
        PhantomConfig(inplane_spacing_mm=(2.0, 1.0))
    with pytest.raises(ValueError):
        PhantomConfig(tumor_free_fraction=1.5)
