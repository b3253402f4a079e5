"""Intrahepatic vessel trees: inside the liver only, rooted at the vena cava and the portal vein."""

from __future__ import annotations

import numpy as np

from livervae.data.synthetic.tissues import Tissue
from livervae.data.synthetic.vessels import paint_liver_vessels


def test_vessels_are_painted_inside_the_liver_only():
    tissues = np.full((100, 100, 80), Tissue.FAT, dtype=np.uint8)
    zz, yy, xx = np.meshgrid(*(np.arange(n) for n in tissues.shape), indexing="ij")
    liver = ((zz - 50) / 45.0) ** 2 + ((yy - 50) / 45.0) ** 2 + ((xx - 40) / 35.0) ** 2 <= 1.0
    tissues[liver] = Tissue.LIVER
    tissues[45:52, 45:52, 70:80] = Tissue.VEIN  # the vena cava above the liver's top
    before = tissues.copy()
    count = paint_liver_vessels(np.random.default_rng(0), tissues, np.diag([2.0, 2.0, 2.0, 1.0]))
    painted = tissues == Tissue.HEPATIC_VEIN
    assert count == np.count_nonzero(painted) > 200
    assert np.all(before[painted] == Tissue.LIVER)
    assert np.array_equal(tissues[~painted], before[~painted])


def test_no_liver_no_vessels():
    tissues = np.full((30, 30, 30), Tissue.FAT, dtype=np.uint8)
    assert paint_liver_vessels(np.random.default_rng(0), tissues, np.eye(4)) == 0
