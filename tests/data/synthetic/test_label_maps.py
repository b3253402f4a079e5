"""TotalSegmentator subjects read as tissue maps with a modelled body wall."""

from __future__ import annotations

import numpy as np
import pytest

from livervae.data.synthetic.label_maps import load_subject, no_liver_ct_paths, subjects_dir, world_points
from livervae.data.synthetic.tissues import STRUCTURE_TISSUES, Tissue
from livervae.errors import InputError


def test_subject_becomes_a_tissue_map_with_its_real_liver_volume(require_subjects):
    subject = load_subject("s0004")
    assert subject.tissues.dtype == np.uint8 and subject.tissues.shape == (255, 177, 440)
    assert subject.liver_ml == pytest.approx(1462.0, abs=1.0)  # the subject's SOURCE.md: 1462 mL
    assert subject.liver_in_view and not load_subject("s0006").liver_in_view
    present = set(np.unique(subject.tissues).tolist())
    for tissue in (Tissue.AIR, Tissue.FAT, Tissue.MUSCLE, Tissue.LIVER, Tissue.KIDNEY, Tissue.BONE, Tissue.LUNG):
        assert tissue in present, tissue.name
    # Every labelled structure lies inside the modelled body wall (distance outside it 0).
    assert np.all(subject.outside_mm[subject.tissues == Tissue.LIVER] == 0)
    assert np.all(subject.tissues[subject.outside_mm > 0] == Tissue.AIR)
    assert load_subject("s0004") is subject  # read once per process
    # The extents every case's field of view starts from: the liver inside the body, under the lungs' top.
    (body_lo, body_hi), (liver_lo, liver_hi) = subject.body_extent, subject.liver_extent
    assert np.all(body_lo <= liver_lo) and np.all(liver_hi <= body_hi)
    assert 150.0 < liver_hi[2] - liver_lo[2] < 250.0  # a liver's cranio-caudal height (mm)
    assert liver_hi[2] < world_points(subject.affine, subject.tissues == Tissue.LUNG)[:, 2].max()
    assert len(subject.liver_world) == np.count_nonzero(subject.tissues == Tissue.LIVER)
    assert subject.liver_world is subject.liver_world and not subject.liver_world.flags.writeable


def test_world_points_are_the_mask_voxel_centres_in_world_mm():
    mask = np.zeros((6, 7, 8), dtype=bool)
    mask[1, 2, 3] = mask[4, 5, 6] = True
    affine = np.diag([2.0, -2.0, 3.0, 1.0])
    affine[:3, 3] = (10.0, 0.0, -5.0)
    assert world_points(affine, mask).tolist() == [[12.0, -4.0, 4.0], [18.0, -10.0, 13.0]]


def test_every_tissue_named_in_the_structure_table_is_a_tissue():
    assert set(STRUCTURE_TISSUES.values()) <= set(Tissue)


def test_missing_subject_or_masks_are_named(tmp_path):
    with pytest.raises(InputError, match="s9999"):
        load_subject("s9999", tmp_path)
    (tmp_path / "totalsegmentator_subjects" / "s0001" / "segmentations").mkdir(parents=True)
    with pytest.raises(InputError, match="no TotalSegmentator masks"):
        load_subject("s0001", tmp_path)


def test_the_no_liver_cts_are_real_ct_files(require_subjects):
    paths = no_liver_ct_paths()
    assert [p.parent.name for p in paths] == ["s0002", "s0003"] and all(p.is_file() for p in paths)
    assert all(subjects_dir() in p.parents for p in paths)
