"""Real organ surfaces as a second anatomy source: BodyParts3D meshes read, rasterised, deformed and placed.

The TotalSegmentator label maps give two livers. The BodyParts3D surfaces (`bodyparts3d_abdomen_obj/` of the shared
data folder: liver, stomach, both kidneys and L5 of one adult, all in one frame) add a third liver shape with its
real contacts to the stomach and the right kidney. They are rasterised once onto a 1.5 mm grid of their own frame;
a case that draws them replaces the subject's liver, stomach and kidneys by the rasterised organs, carried into the
subject by a random similarity transform anchored at the liver dome (or its tip when the subject's dome is out of
view) and sized to the subject's liver, then deformed by a large smooth random displacement and a random scaling
of the left lobe. Bones, muscles, vessels, heart, spleen, gallbladder and the outside of the body are kept; what
the subject's organs leave empty takes the nearest fat, lung, bowel or other soft tissue, so the neighbours close
the gap.

Source: BodyParts3D, (c) The Database Center for Life Science, licensed under CC Attribution-Share Alike 2.1 Japan
(see the folder's `SOURCE.md` and `docs/data.md`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from livervae.data.synthetic.deformation import local_scaling, rotation, smooth_displacement
from livervae.data.synthetic.label_maps import AnatomySubject
from livervae.data.synthetic.tissues import Tissue
from livervae.errors import InputError
from livervae.paths import shared_data_dir

MESH_FOLDER = "bodyparts3d_abdomen_obj"
# Organ -> (file, tissue). L5 is read and rasterised (the frame's landmark) but never placed: the subjects have
# their own spine.
MESH_FILES: dict[str, tuple[str, Tissue]] = {
    "liver": ("FMA7197_Liver.obj", Tissue.LIVER),
    "stomach": ("FMA7148_Stomach.obj", Tissue.STOMACH),
    "right_kidney": ("FMA7204_Right_Kidney.obj", Tissue.KIDNEY),
    "left_kidney": ("FMA7205_Left_Kidney.obj", Tissue.KIDNEY),
    "l5": ("FMA13076_Fifth_Lumbar_Vertebra.obj", Tissue.BONE),
}
PLACED_ORGANS = ("liver", "stomach", "right_kidney", "left_kidney")
# The subject's tissues the placed organs replace, and those they never overwrite.
REPLACED_TISSUES = (Tissue.LIVER, Tissue.STOMACH, Tissue.KIDNEY, Tissue.CYST)
KEPT_TISSUES = (
    Tissue.AIR,
    Tissue.SKIN,
    Tissue.MUSCLE,
    Tissue.BONE,
    Tissue.CARTILAGE,
    Tissue.SPINAL_CORD,
    Tissue.ARTERY,
    Tissue.VEIN,
    Tissue.PORTAL_VEIN,
    Tissue.HEART,
    Tissue.GALLBLADDER,
    Tissue.SPLEEN,
)
# Tissues that never fill the space the subject's organs leave (a rib or the aorta must not grow into it).
NOT_FILLING = (
    Tissue.AIR,
    Tissue.SKIN,
    Tissue.BONE,
    Tissue.CARTILAGE,
    Tissue.SPINAL_CORD,
    Tissue.ARTERY,
    Tissue.VEIN,
    Tissue.PORTAL_VEIN,
    Tissue.HEART,
    Tissue.TABLE,
)
# The mesh frame is LPS (+x patient left, +y posterior, +z superior); the subjects' world is RAS.
_LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])


def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a Wavefront OBJ triangle surface.

    Returns:
        (vertices, faces): float64 (n, 3) positions and int64 (m, 3) zero-based vertex indices of each triangle.

    Raises:
        InputError: the file is missing, unreadable, has no triangles, a non-triangular face or an index out of range.
    """
    try:
        text = Path(path).read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read OBJ surface: {exc}") from None
    vertices: list[list[float]] = []
    faces: list[list[int]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            if fields[0] == "v":
                vertices.append([float(v) for v in fields[1:4]])
            elif fields[0] == "f":
                if len(fields) != 4:
                    corners = len(fields) - 1
                    raise InputError(path, f"line {number}: only triangles are supported, got {corners} corners")
                faces.append([int(corner.split("/")[0]) - 1 for corner in fields[1:4]])
        except ValueError:
            raise InputError(path, f"line {number}: malformed {fields[0]!r} record") from None
    if not faces or not vertices:
        raise InputError(path, "no vertices or no triangles: not an OBJ surface")
    vertex_array = np.asarray(vertices, dtype=np.float64)
    face_array = np.asarray(faces, dtype=np.int64)
    if vertex_array.shape[1] != 3 or not np.isfinite(vertex_array).all():
        raise InputError(path, "vertices must have three finite coordinates")
    if face_array.min() < 0 or face_array.max() >= len(vertex_array):
        raise InputError(path, f"a triangle indexes a vertex outside 1..{len(vertex_array)}")
    return vertex_array, face_array


def rasterise_surface(
    vertices: np.ndarray, faces: np.ndarray, origin: np.ndarray, spacing: float, shape: tuple[int, int, int]
) -> np.ndarray:
    """The solid a closed (or nearly closed) triangle surface encloses, on an axis-aligned grid.

    Points sampled on every triangle at under half a voxel apart mark the surface; a closing seals the small holes
    a scanned surface has; filling the holes gives the inside.

    Args:
        vertices: (n, 3) positions (mm).
        faces: (m, 3) vertex indices.
        origin: position of voxel (0, 0, 0) (mm).
        spacing: isotropic voxel size (mm).
        shape: grid shape.
    """
    corners = vertices[faces]  # (m, 3 corners, 3)
    edges = np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2).max(axis=1)
    steps = np.maximum(1, np.ceil(edges / (0.4 * spacing))).astype(int)
    surface = np.zeros(shape, dtype=bool)
    for n in np.unique(steps):
        tri = corners[steps == n]
        i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
        keep = i + j <= n
        a, b = i[keep] / n, j[keep] / n
        points = (
            tri[:, None, 0] * (1 - a - b)[None, :, None]
            + tri[:, None, 1] * a[None, :, None]
            + tri[:, None, 2] * b[None, :, None]
        ).reshape(-1, 3)
        ijk = np.rint((points - origin) / spacing).astype(int)
        inside = np.all((ijk >= 0) & (ijk < np.asarray(shape)), axis=1)
        surface[tuple(ijk[inside].T)] = True
    closed = ndimage.binary_closing(surface, structure=ndimage.generate_binary_structure(3, 1), iterations=2)
    return ndimage.binary_fill_holes(closed | surface)


@dataclass(frozen=True)
class MeshAnatomy:
    """The rasterised BodyParts3D organs.

    Attributes:
        labels: uint8 tissue codes (`Tissue`) on an isotropic grid of the mesh frame (LPS mm).
        origin: mesh-frame position of voxel (0, 0, 0).
        spacing: voxel size (mm).
        organ_ml: volume of each rasterised organ.
        liver_top: the liver dome's mesh-frame anchor (x, y of the liver's centroid, z of its top).
        liver_bottom: the same with z of the liver's tip.
        left_lobe_centre: centroid of the liver's leftmost quarter.
        liver_radius: root-mean-square distance of the liver's voxels from its centroid (mm).
    """

    labels: np.ndarray
    origin: np.ndarray
    spacing: float
    organ_ml: dict[str, float]
    liver_top: np.ndarray
    liver_bottom: np.ndarray
    left_lobe_centre: np.ndarray
    liver_radius: float


def meshes_dir(data_dir: Path | None = None) -> Path:
    """The BodyParts3D folder under the shared data folder."""
    return (data_dir or shared_data_dir()) / MESH_FOLDER


def load_mesh_anatomy(data_dir: Path | None = None, spacing: float = 1.5) -> MeshAnatomy:
    """Read and rasterise the BodyParts3D organs (cached per process).

    Raises:
        InputError: the folder or one of its OBJ files is missing or unreadable.
    """
    return _load_mesh_anatomy(meshes_dir(data_dir).resolve(), float(spacing))


@functools.lru_cache(maxsize=2)
def _load_mesh_anatomy(folder: Path, spacing: float) -> MeshAnatomy:
    if not folder.is_dir():
        raise InputError(folder, "BodyParts3D mesh folder not found (set LIVERVAE_DATA_DIR)")
    surfaces = {organ: read_obj(folder / name) for organ, (name, _) in MESH_FILES.items()}
    lo = np.min([v.min(axis=0) for v, _ in surfaces.values()], axis=0) - 3 * spacing
    hi = np.max([v.max(axis=0) for v, _ in surfaces.values()], axis=0) + 3 * spacing
    shape = tuple(int(n) for n in np.ceil((hi - lo) / spacing) + 1)
    labels = np.zeros(shape, dtype=np.uint8)
    organ_ml: dict[str, float] = {}
    voxel_ml = spacing**3 / 1000.0
    # The liver last: where rasterised surfaces touch, the liver keeps its contact voxels.
    for organ in ("l5", "left_kidney", "right_kidney", "stomach", "liver"):
        solid = rasterise_surface(*surfaces[organ], lo, spacing, shape)  # type: ignore[arg-type]
        organ_ml[organ] = float(np.count_nonzero(solid) * voxel_ml)
        labels[solid] = MESH_FILES[organ][1]
    liver = np.argwhere(labels == Tissue.LIVER) * spacing + lo
    centre = liver.mean(axis=0)
    top = np.array([centre[0], centre[1], liver[:, 2].max()])
    bottom = np.array([centre[0], centre[1], liver[:, 2].min()])
    # LPS: +x is the patient's left, so the left lobe is the liver's largest-x quarter.
    left = liver[liver[:, 0] >= np.quantile(liver[:, 0], 0.75)].mean(axis=0)
    radius = float(np.sqrt(((liver - centre) ** 2).sum(axis=1).mean()))
    labels.setflags(write=False)
    return MeshAnatomy(labels, lo, spacing, organ_ml, top, bottom, left, radius)


@dataclass(frozen=True)
class MeshPlacement:
    """The drawn placement of the mesh organs in a subject.

    Attributes:
        matrix: subject world (RAS mm) to mesh frame (LPS mm), linear part.
        offset: its translation: `mesh = matrix @ world + offset`.
        elastic_mm: standard deviation of the large smooth displacement (mm, control points about 50 mm apart).
        left_lobe_scale: extra local scaling of the left lobe around its centroid.
    """

    matrix: np.ndarray
    offset: np.ndarray
    elastic_mm: float
    left_lobe_scale: float


def draw_mesh_placement(rng: np.random.Generator, subject: AnatomySubject, mesh: MeshAnatomy) -> MeshPlacement:
    """Draw where and how the mesh organs sit in `subject`.

    Size: the mesh liver takes the subject's liver volume (when its whole liver is in view) or its in-plane extent,
    then a random anisotropic factor of 0.9-1.1 per axis; rotation within +-8 degrees (+-12 about the long axis);
    anchor: the liver dome on the subject's dome, or the tip on its tip when the dome is out of view.
    """
    liver = subject.liver_world @ _LPS_FROM_RAS.T
    if subject.liver_in_view:
        size = (subject.liver_ml / mesh.organ_ml["liver"]) ** (1.0 / 3.0)
    else:
        mesh_liver = np.argwhere(mesh.labels == Tissue.LIVER) * mesh.spacing + mesh.origin
        extent = np.percentile(liver[:, :2], 98, axis=0) - np.percentile(liver[:, :2], 2, axis=0)
        mesh_extent = np.percentile(mesh_liver[:, :2], 98, axis=0) - np.percentile(mesh_liver[:, :2], 2, axis=0)
        size = float(np.mean(extent / mesh_extent))
    scale = size * rng.uniform(0.9, 1.1, size=3)
    turn = rotation(np.deg2rad(rng.uniform([-8.0, -8.0, -12.0], [8.0, 8.0, 12.0])))
    centre = liver.mean(axis=0)
    if subject.liver_in_view:
        anchor_subject, anchor_mesh = np.array([centre[0], centre[1], liver[:, 2].max()]), mesh.liver_top
    else:
        anchor_subject, anchor_mesh = np.array([centre[0], centre[1], liver[:, 2].min()]), mesh.liver_bottom
    # mesh = anchor_mesh + R^T S^-1 (lps - anchor_subject), lps = F ras.
    linear = turn.T @ np.diag(1.0 / scale) @ _LPS_FROM_RAS
    offset = anchor_mesh - turn.T @ np.diag(1.0 / scale) @ anchor_subject
    return MeshPlacement(linear, offset, float(rng.uniform(4.0, 12.0)), float(rng.uniform(0.7, 1.35)))


def place_mesh_organs(
    rng: np.random.Generator,
    tissues: np.ndarray,
    source_world: np.ndarray,
    out_spacing: np.ndarray,
    mesh: MeshAnatomy,
    placement: MeshPlacement,
) -> int:
    """Replace the subject's liver, stomach and kidneys in `tissues` (in place) by the placed mesh organs.

    Args:
        rng: the case's stream for the deformation.
        tissues: the case's tissue map on its output grid.
        source_world: (3, *tissues.shape) subject-world (RAS mm) position each output voxel was drawn from.
        out_spacing: the output grid's voxel size (mm), for the smoothness of the displacement.
        mesh: the rasterised organs.
        placement: the drawn placement.

    Returns:
        The number of mesh-liver voxels placed.
    """
    shape = tissues.shape
    points = np.einsum("ab,b...->a...", placement.matrix.astype(np.float32), source_world)
    points += placement.offset.astype(np.float32)[:, None, None, None]
    points += smooth_displacement(rng, shape, np.asarray(out_spacing), placement.elastic_mm)
    points += local_scaling(points, mesh.left_lobe_centre, 0.5 * mesh.liver_radius, placement.left_lobe_scale)
    points -= mesh.origin.astype(np.float32)[:, None, None, None]
    points /= np.float32(mesh.spacing)
    organs = ndimage.map_coordinates(mesh.labels, points, order=0, mode="constant", cval=0)
    del points
    placed = (organs != 0) & (organs != Tissue.BONE) & ~np.isin(tissues, KEPT_TISSUES)
    replaced = np.isin(tissues, REPLACED_TISSUES)
    vacated = replaced & ~placed
    if vacated.any():
        # Each emptied voxel takes the tissue of the nearest soft-tissue, fat, lung or bowel voxel that is neither an
        # old nor a new organ.
        nearest = ndimage.distance_transform_edt(
            replaced | placed | np.isin(tissues, NOT_FILLING),
            sampling=out_spacing,
            return_distances=False,
            return_indices=True,
        )
        tissues[vacated] = tissues[tuple(index[vacated] for index in nearest)]
    tissues[placed] = organs[placed]
    return int(np.count_nonzero(placed & (organs == Tissue.LIVER)))
