"""Pose, size and the liver's local scaling."""

from __future__ import annotations

import numpy as np

from livervae.data.synthetic.deformation import Pose, draw_pose, forward_box, pull_back
from livervae.data.synthetic.label_maps import load_subject


def test_poses_stay_in_their_ranges(require_subjects):
    subject = load_subject("s0004")
    for seed in range(30):
        pose = draw_pose(np.random.default_rng(seed), subject, (1200.0, 2200.0))
        assert np.all((0.8 < pose.scale) & (pose.scale < 1.2))
        assert 0.8 <= pose.liver_scale <= 1.25 and 0.75 <= pose.left_lobe_scale <= 1.3
        assert abs(np.linalg.det(pose.matrix) * np.prod(pose.scale) - 1.0) < 1e-9  # rotation times 1 / scale


def test_identity_pose_maps_every_voxel_to_itself(require_subjects):
    subject = load_subject("s0004")
    pose = Pose(np.eye(3), np.ones(3), 1.0, 1.0, 0.0)
    out_affine = subject.affine.copy()
    centre = out_affine[:3, 3] + 10.0
    coords = pull_back(subject, pose, out_affine, (6, 5, 4), centre, centre, np.random.default_rng(0))
    expected = np.stack(np.meshgrid(np.arange(6), np.arange(5), np.arange(4), indexing="ij"))
    assert np.allclose(coords, expected, atol=1e-3)


def test_forward_box_inverts_the_linear_part():
    pose = Pose(np.diag([0.5, 1.0, 2.0]), np.array([2.0, 1.0, 0.5]), 1.0, 1.0, 0.0)
    lo, hi = forward_box(pose, np.zeros(3), np.array([10.0, 10.0, 10.0]), np.zeros(3), np.zeros(3))
    assert np.allclose(lo, 0.0) and np.allclose(hi, [20.0, 10.0, 5.0])
