import math

import numpy as np
import pytest

from livervae.metrics.segmentation import OverlapCounts, global_dice, overlap, surface_distances, volume_error


def test_dice_conventions():
    a = np.zeros((4, 4, 4), bool)
    assert overlap(a, a).dice == 1.0  # both empty: LiTS scores 1
    b = a.copy()
    b[0, 0, :2] = True
    assert overlap(a, b).dice == 0.0
    c = b.copy()
    c[0, 0, 2:] = True
    assert overlap(b, c).dice == pytest.approx(2 * 2 / 6)


def test_global_dice_weights_large_cases():
    counts = [OverlapCounts(90, 100, 100), OverlapCounts(0, 1, 1)]
    assert global_dice(counts) == pytest.approx(180 / 202)
    assert np.mean([c.dice for c in counts]) == pytest.approx(0.45)
    assert math.isnan(global_dice([]))


def test_surface_distances_in_mm():
    a = np.zeros((20, 20, 20), bool)
    a[5:10, 5:10, 5:10] = True
    b = np.roll(a, 2, axis=0)
    hd95, assd = surface_distances(a, b, (1.5, 1.0, 1.0))
    assert hd95 == pytest.approx(3.0) and 0 < assd <= 3.0
    assert all(math.isnan(v) for v in surface_distances(a, np.zeros_like(a), (1, 1, 1)))


def test_volume_error():
    a = np.zeros(10, bool)
    a[:4] = True
    b = np.zeros(10, bool)
    b[:5] = True
    assert volume_error(b, a) == pytest.approx(0.25) and math.isnan(volume_error(a, np.zeros(10, bool)))
