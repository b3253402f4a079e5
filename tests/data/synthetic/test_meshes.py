"""BodyParts3D organs: OBJ reading, rasterisation with known answers, the organs' frame, and placing them in a case."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from livervae.data.synthetic.generator import SyntheticConfig, generate_synthetic_case
from livervae.data.synthetic.meshes import load_mesh_anatomy, meshes_dir, rasterise_surface, read_obj
from livervae.data.synthetic.tissues import Tissue
from livervae.errors import InputError
from livervae.labels import LIVER

_CUBE_VERTICES = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=float)
# Twelve triangles, two per face of the unit cube (vertex index = 4x + 2y + z).
_CUBE_FACES = np.array(
    [
        [0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
        [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3],
    ]
)  # fmt: skip


def _tiled_cube(side: float, tile: float, origin: float) -> tuple[np.ndarray, np.ndarray]:
    """A cube surface of `side` mm tiled in squares of `tile` mm, two triangles each (the first two: one square)."""
    n = int(round(side / tile))
    vertices, faces = [], []
    for axis in range(3):
        for level in (0.0, side):
            u, v = [a for a in range(3) if a != axis]
            for i in range(n):
                for j in range(n):
                    base = len(vertices)
                    for di, dj in ((0, 0), (1, 0), (1, 1), (0, 1)):
                        point = np.zeros(3)
                        point[axis], point[u], point[v] = level, (i + di) * tile, (j + dj) * tile
                        vertices.append(point + origin)
                    faces += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    return np.array(vertices), np.array(faces)


@pytest.fixture(scope="module")
def require_meshes() -> None:
    if not (meshes_dir() / "FMA7197_Liver.obj").is_file():
        pytest.skip("shared data folder with bodyparts3d_abdomen_obj not found (set LIVERVAE_DATA_DIR)")


def _world(affine: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.argwhere(mask) @ affine[:3, :3].T + affine[:3, 3]


def test_rasterised_cube_has_the_cube_volume_even_with_a_missing_triangle():
    side, spacing = 30.0, 1.0
    vertices = _CUBE_VERTICES * side + 10.0
    solid = rasterise_surface(vertices, _CUBE_FACES, np.zeros(3), spacing, (50, 50, 50))
    # Voxel centres from 10 to 40 inclusive: 31 per side.
    assert np.count_nonzero(solid) == pytest.approx(31**3, rel=0.02)
    assert solid[25, 25, 25] and not solid[5, 25, 25] and not solid[45, 25, 25]
    # A scanned surface has small holes: a cube tiled in 2 mm squares with one square left out still fills.
    vertices, faces = _tiled_cube(side=30.0, tile=2.0, origin=10.0)
    solid = rasterise_surface(vertices, faces[2:], np.zeros(3), spacing, (50, 50, 50))
    assert np.count_nonzero(solid) == pytest.approx(31**3, rel=0.02)
    # Without the closing's help a big opening stays open: half a face missing leaves a hollow shell.
    solid = rasterise_surface(_CUBE_VERTICES * side + 10.0, _CUBE_FACES[1:], np.zeros(3), spacing, (50, 50, 50))
    assert np.count_nonzero(solid) < 0.3 * 31**3


def test_obj_reader_reads_the_liver_and_names_the_file_on_bad_input(require_meshes, tmp_path):
    vertices, faces = read_obj(meshes_dir() / "FMA7197_Liver.obj")
    assert vertices.shape == (1965, 3) and faces.shape == (3882, 3)  # as SOURCE.md lists
    assert faces.min() == 0 and faces.max() == 1964
    cases = {
        "quad.obj": ("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3 4\n", "only triangles"),
        "index.obj": ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n", "outside 1..3"),
        "text.obj": ("v a b c\nf 1 2 3\n", "malformed"),
        "empty.obj": ("# nothing\n", "no vertices or no triangles"),
    }
    for name, (text, problem) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(InputError, match=problem) as error:
            read_obj(tmp_path / name)
        assert name in str(error.value)
    with pytest.raises(InputError, match="missing.obj"):
        read_obj(tmp_path / "missing.obj")
    with pytest.raises(InputError, match="mesh folder not found"):
        load_mesh_anatomy(tmp_path)


def test_rasterised_organs_have_their_volumes_and_places(require_meshes):
    mesh = load_mesh_anatomy()
    # SOURCE.md: signed volumes 1565 / 578 / 126 / 117 / 55 mL, 1 mm voxelised 1622 / 606 / 136 / 127 / 65 mL.
    assert 1500.0 <= mesh.organ_ml["liver"] <= 1720.0
    assert 560.0 <= mesh.organ_ml["stomach"] <= 650.0
    assert 115.0 <= mesh.organ_ml["right_kidney"] <= 150.0 and 110.0 <= mesh.organ_ml["left_kidney"] <= 145.0

    def centre(tissue: Tissue, x_sign: float = 0.0) -> np.ndarray:
        points = np.argwhere(mesh.labels == tissue) * mesh.spacing + mesh.origin
        return points[points[:, 0] * x_sign >= 0].mean(axis=0)

    liver, stomach = centre(Tissue.LIVER), centre(Tissue.STOMACH)
    right_kidney, left_kidney = centre(Tissue.KIDNEY, -1.0), centre(Tissue.KIDNEY, 1.0)
    # Mesh frame LPS: +x patient left, +y posterior, +z superior.
    assert liver[0] < stomach[0]  # the liver right of the stomach
    assert right_kidney[1] > liver[1] + 30.0  # the right kidney behind the liver
    assert mesh.liver_top[2] > max(right_kidney[2], left_kidney[2]) + 60.0  # the dome well above the kidneys
    assert right_kidney[2] < left_kidney[2]  # the right kidney lower, under the liver
    assert mesh.left_lobe_centre[0] > liver[0]


def test_case_with_mesh_organs_keeps_the_grid_and_puts_the_liver_under_the_diaphragm(require_subjects, require_meshes):
    base = dataclasses.replace(SyntheticConfig.training_pool(), subjects=("s0004",), min_spacing_mm=(3.0, 3.0, 3.0))
    config = dataclasses.replace(base, mesh_organ_fraction=1.0)
    for index in (0, 3):
        own = generate_synthetic_case(index, 9, base)
        image, label, truth, tissues = generate_synthetic_case(index, 9, config)
        assert truth.anatomy == "s0004+bodyparts3d" and own[2].anatomy == "s0004" and not truth.no_liver
        assert np.array_equal(image.affine, own[0].affine) and image.shape == own[0].shape
        liver, own_liver = label.array >= LIVER, own[1].array >= LIVER
        dice = 2.0 * np.count_nonzero(liver & own_liver) / (np.count_nonzero(liver) + np.count_nonzero(own_liver))
        assert 0.5 < dice < 0.95, dice  # a different liver, where the subject's liver was
        if not truth.liver_cut:
            assert 1000.0 <= truth.liver_ml <= 2600.0, truth.liver_ml
        world = _world(image.affine, liver)
        lung = _world(image.affine, tissues == Tissue.LUNG)
        kidney = _world(image.affine, tissues == Tissue.KIDNEY)
        spine_x = np.median(_world(image.affine, tissues == Tissue.BONE)[:, 0])
        # RAS: the liver in the right upper abdomen, the right lung base above its dome, the kidney behind it.
        assert world[:, 0].mean() > spine_x
        right_lung = lung[lung[:, 0] > spine_x]
        if len(right_lung) and not truth.liver_cut:
            assert right_lung[:, 2].max() > world[:, 2].max()
        right_kidney = kidney[kidney[:, 0] > spine_x]
        if len(right_kidney) > 50:
            assert right_kidney[:, 1].mean() < world[:, 1].mean()
        # The placed organs never cover bone or vessels: the subject's spine and aorta are intact.
        assert np.array_equal(tissues == Tissue.BONE, own[3] == Tissue.BONE)
        assert np.array_equal(tissues == Tissue.ARTERY, own[3] == Tissue.ARTERY)


def test_negative_cases_show_chest_or_pelvis_without_liver(require_subjects):
    config = dataclasses.replace(SyntheticConfig.training_pool(), min_spacing_mm=(3.0, 3.0, 3.0), no_liver_fraction=1.0)
    for index in range(3):
        image, label, truth, tissues = generate_synthetic_case(index, 4, config)
        assert truth.no_liver and truth.liver_ml == 0.0 and not truth.lesions
        assert not label.array.any() and image.array.min() < -900
        assert image.shape[2] * image.spacing[2] >= 115.0  # at least 120 mm of body, less rounding
        assert np.count_nonzero(tissues != Tissue.AIR) > 0.2 * tissues.size


def test_training_mix_preset_and_bad_fractions():
    mix = SyntheticConfig.training_mix()
    assert mix.mesh_organ_fraction == 0.5 and mix.no_liver_fraction == 0.08
    with pytest.raises(ValueError, match="no_liver_fraction"):
        SyntheticConfig(no_liver_fraction=-0.1)
    with pytest.raises(ValueError, match="mesh_organ_fraction"):
        SyntheticConfig(mesh_organ_fraction=2.0)
