import math

import pytest

from livervae.transforms import Severityd


def test_missing_becomes_nan_and_values_are_checked():
    assert math.isnan(float(Severityd()({"severity": None})["severity"]))
    assert math.isnan(float(Severityd()({})["severity"]))
    assert float(Severityd()({"severity": 0.25})["severity"]) == 0.25
    with pytest.raises(ValueError, match="outside"):
        Severityd()({"severity": 1.5})
