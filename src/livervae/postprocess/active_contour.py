"""Morphological active contours (morphsnakes) in torch: batched, on any device, voxel-exact with scikit-image.

The tumour model's boundaries are refined by a morphological Chan-Vese contour (Márquez-Neila, Baumela and Alvarez,
PAMI 2014). scikit-image 0.26 implements it in `skimage.segmentation.morphsnakes` with scipy's binary morphology,
one volume at a time on the CPU. This module re-implements the same algorithms with vectorised torch operations so
that a batch of 2D images or 3D volumes is processed at once, on the CPU or a GPU.

Operators (identical to `skimage/segmentation/morphsnakes.py`):

* SI ("sup-inf") is the pointwise maximum of the binary erosions of ``u`` by a family of line segments through the
  centre voxel: in 2D the 4 three-pixel lines (two axes and two diagonals), in 3D the 9 three-by-three planes (the
  3 axis planes and the 6 diagonal planes). IS ("inf-sup") is the minimum of the dilations by the same family.
  Each 3D plane is the Minkowski sum of two 3-voxel lines that move along disjoint sets of coordinates, so its
  erosion (dilation) is two line erosions (dilations) in sequence; planes that share their first line share that
  pass. Voxels outside the volume count as 0 for both erosion and dilation, as in scipy's default
  ``border_value=0``.
* The curvature (smoothing) step applies SI∘IS and IS∘SI alternately, starting with SI∘IS.
* Chan-Vese image attachment: with ``c0``/``c1`` the mean intensity outside/inside, every voxel on the contour
  (non-zero ``np.gradient`` of ``u``) becomes inside where ``lambda1 (I - c1)^2 < lambda2 (I - c0)^2`` and outside
  where it is greater; exact ties leave it unchanged.
* Geodesic active contour: an optional balloon force (dilation or erosion by the full 3^n cube where
  ``gimage > threshold / |balloon|``), then the attachment ``u = 1`` where ``grad(gimage) . grad(u) > 0`` and
  ``u = 0`` where it is negative, then smoothing.

Exactness contract: for the same inputs and parameters the returned masks equal scikit-image 0.26's voxel for voxel.
Decisions are signs of floating-point expressions, so the floating-point arithmetic is reproduced as well:

* The image statistics ``c0``/``c1`` are computed as numpy does: in the image's dtype (float32 stays float32, integer
  images are summed exactly as int64), with numpy's pairwise summation over the product array in the memory order
  numpy would give it (C order unless the image and level set are both laid out otherwise), and numpy's scalar
  type-promotion rules (NEP 50) for the divisions and the ``lambda`` products.
* Gradients use ``np.gradient``'s rules: central differences halved in the interior, one-sided differences at the
  edges, in the array's dtype; the geodesic attachment accumulates axis by axis into an array of the image's dtype
  exactly as ``aux += dimage_k * du_k`` does.
* ``threshold="auto"`` is ``np.percentile(gimage, 40)`` with numpy's linear interpolation formula, and the balloon
  mask compares with ``threshold / np.abs(balloon)`` evaluated by numpy itself.
* `inverse_gaussian_gradient` reproduces ``scipy.ndimage.gaussian_gradient_magnitude(mode="nearest")``: scipy's
  kernel, its symmetric/antisymmetric summation order in double precision, and rounding to the output dtype after
  every 1D pass.
* No hidden state: every call starts its smoothing with SI∘IS. scikit-image keeps the alternation in the module-level
  iterator ``morphsnakes._curvop``, so its result depends on earlier calls; compare with it only after resetting
  that iterator.

Elementwise operations are done as separate torch operations (never fused multiply-adds), so CPU and CUDA round the
same way. Float16 images follow numpy on the CPU only (CUDA may compute half arithmetic natively); bfloat16 has no
numpy counterpart and is promoted to float32.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "checkerboard_level_set",
    "disk_level_set",
    "inf_sup",
    "inverse_gaussian_gradient",
    "morphological_chan_vese",
    "morphological_geodesic_active_contour",
    "sup_inf",
]

ArrayLike = np.ndarray | torch.Tensor

_NP_TO_TORCH: dict[np.dtype, torch.dtype] = {
    np.dtype(np.bool_): torch.bool,
    np.dtype(np.uint8): torch.uint8,
    np.dtype(np.int8): torch.int8,
    np.dtype(np.int16): torch.int16,
    np.dtype(np.int32): torch.int32,
    np.dtype(np.int64): torch.int64,
    np.dtype(np.float16): torch.float16,
    np.dtype(np.float32): torch.float32,
    np.dtype(np.float64): torch.float64,
}
_TORCH_TO_NP: dict[torch.dtype, np.dtype] = {v: k for k, v in _NP_TO_TORCH.items()}
_TORCH_TO_NP.update({torch.uint16: np.dtype(np.uint16), torch.uint32: np.dtype(np.uint32)})
_TORCH_TO_NP[torch.uint64] = np.dtype(np.uint64)

# Leaf size of numpy's pairwise summation (PW_BLOCKSIZE in numpy/_core/src/umath/loops_utils.h.src).
_PW_BLOCKSIZE = 128


# --------------------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------------------


@dataclass
class _Image:
    """An input array as a batched torch tensor plus what numpy would have seen.

    Attributes:
        data: (B, *spatial) tensor; floats keep their dtype, integers and bools are held exactly as int64.
        np_dtype: the numpy dtype scikit-image would compute with.
        item_strides: byte strides of one batch item as numpy would see them (they decide numpy's summation order).
        batched: whether the caller passed a batch dimension.
        numpy_io: whether the caller passed numpy (and gets numpy back).
    """

    data: torch.Tensor
    np_dtype: np.dtype
    item_strides: tuple[int, ...]
    batched: bool
    numpy_io: bool

    @property
    def spatial(self) -> tuple[int, ...]:
        """The spatial shape of one item."""
        return tuple(self.data.shape[1:])


def _spatial_dims(ndim: int, spatial_dims: int | None) -> int:
    """Resolve how many trailing dimensions are spatial: 2D/3D arrays are unbatched unless told otherwise."""
    if spatial_dims is None:
        if ndim in (2, 3):
            return ndim
        if ndim == 4:
            return 3
        raise ValueError(f"expected a 2D or 3D array or a (B, D, H, W) batch, got {ndim} dimensions")
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    if ndim not in (spatial_dims, spatial_dims + 1):
        raise ValueError(f"an array with {ndim} dimensions does not hold {spatial_dims}D images (with a batch dim)")
    return spatial_dims


def _as_image(array: ArrayLike, spatial_dims: int | None, device: torch.device | None = None) -> _Image:
    """Convert an image to a batched tensor, remembering its numpy dtype and memory layout."""
    numpy_io = not isinstance(array, torch.Tensor)
    if numpy_io:
        array = np.asarray(array)
        if array.dtype.kind not in "biuf" or array.dtype.itemsize > 8:
            raise TypeError(f"unsupported image dtype {array.dtype}")
        np_dtype = array.dtype
        strides = tuple(int(s) for s in array.strides)
        if np_dtype.kind in "biu":
            # Integers are exact in int64 (uint64 beyond 2**63 is not supported; numpy promotes it to float64).
            host = array.astype(np.float64 if np_dtype == np.uint64 else np.int64)
        else:
            host = np.ascontiguousarray(array)
        data = torch.from_numpy(np.ascontiguousarray(host))
        if device is not None:
            data = data.to(device)
    else:
        tensor = array.as_tensor() if hasattr(array, "as_tensor") else array
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()  # no numpy counterpart: documented promotion
        if tensor.dtype not in _TORCH_TO_NP:
            raise TypeError(f"unsupported image dtype {tensor.dtype}")
        np_dtype = _TORCH_TO_NP[tensor.dtype]
        strides = tuple(int(s) * tensor.element_size() for s in tensor.stride())
        data = tensor.detach()
        if device is not None:
            data = data.to(device)
        if np_dtype.kind in "biu":
            data = data.to(torch.float64 if np_dtype == np.uint64 else torch.int64)
    nd = _spatial_dims(data.ndim, spatial_dims)
    batched = data.ndim == nd + 1
    if not batched:
        data = data.unsqueeze(0)
    else:
        strides = strides[1:]
    if any(s < 2 for s in data.shape[1:]):
        # np.gradient needs two samples along every axis; scikit-image raises the same way.
        raise ValueError(f"every spatial dimension needs at least 2 voxels, got {tuple(data.shape[1:])}")
    return _Image(data, np_dtype, strides, batched, numpy_io)


def _as_level_set(init: Any, image: _Image) -> tuple[torch.Tensor, tuple[int, ...] | None]:
    """Binarise the initial level set (``init > 0``) as a (B, *spatial) bool tensor on the image's device.

    Returns the mask and the byte strides of one item of the user's array (None for generated level sets, which
    numpy creates C-contiguous).
    """
    device = image.data.device
    spatial = image.spatial
    if isinstance(init, str):
        if init == "checkerboard":
            mask = _checkerboard(spatial, 5, device)
        elif init in ("disk", "circle"):
            # "circle" is the pre-0.19 scikit-image name of the same level set.
            mask = _disk(spatial, None, None, device)
        else:
            raise ValueError("`init_level_set` not in ['checkerboard', 'disk', 'circle']")
        return mask.unsqueeze(0).expand(image.data.shape[0], *spatial), None
    if isinstance(init, torch.Tensor):
        tensor = init.as_tensor() if hasattr(init, "as_tensor") else init
        strides = tuple(int(s) * tensor.element_size() for s in tensor.stride())
        mask = tensor.detach().to(device) > 0
    else:
        array = np.asarray(init)
        strides = tuple(int(s) for s in array.strides)
        mask = torch.from_numpy(np.ascontiguousarray(array > 0)).to(device)
    if tuple(mask.shape) == spatial:
        return mask.unsqueeze(0).expand(image.data.shape[0], *spatial), strides
    if tuple(mask.shape) == tuple(image.data.shape) and (image.batched or mask.ndim == len(spatial)):
        return mask, strides[1:] if mask.ndim > len(spatial) else strides
    raise ValueError(
        "The dimensions of the initial level set do not match the dimensions of the image: "
        f"{tuple(mask.shape)} vs {tuple(image.data.shape) if image.batched else spatial}"
    )


def _output(u: torch.Tensor, image: _Image) -> ArrayLike:
    """Return the level set as scikit-image does (int8), with the caller's batch layout and array type."""
    out = u.to(torch.int8)
    if not image.batched:
        out = out[0]
    return out.cpu().numpy() if image.numpy_io else out


# --------------------------------------------------------------------------------------------------------------
# Level sets (scikit-image's helpers)
# --------------------------------------------------------------------------------------------------------------


def _checkerboard(shape: Sequence[int], square_size: int, device: torch.device | str | None) -> torch.Tensor:
    """`checkerboard_level_set` as a bool tensor: the parity of the sum of the square indices."""
    parity = torch.zeros(tuple(shape), dtype=torch.int64, device=device)
    for axis, size in enumerate(shape):
        view = [1] * len(shape)
        view[axis] = int(size)
        parity = parity ^ ((torch.arange(int(size), device=device) // square_size) & 1).view(view)
    return parity.bool()


def _disk(
    shape: Sequence[int],
    center: Sequence[float] | None,
    radius: float | None,
    device: torch.device | str | None,
) -> torch.Tensor:
    """`disk_level_set` as a bool tensor, with numpy's arithmetic (int or float offsets, float64 square root)."""
    if center is None:
        center = tuple(int(i) // 2 for i in shape)
    if radius is None:
        radius = min(shape) * 3.0 / 8.0
    # numpy subtracts an integer centre in int64 and any other in float64; the squares are summed axis by axis.
    dtype = torch.int64 if np.asarray(center).dtype.kind in "iu" else torch.float64
    total: torch.Tensor | None = None
    for axis, (size, c) in enumerate(zip(shape, np.asarray(center).tolist())):
        offsets = torch.arange(int(size), device=device, dtype=dtype) - torch.tensor(c, dtype=dtype, device=device)
        view = [1] * len(shape)
        view[axis] = int(size)
        square = (offsets * offsets).view(view)
        total = square if total is None else total + square
    assert total is not None
    phi = float(radius) - _sqrt(total.to(torch.float64))
    return (phi > 0).expand(tuple(int(s) for s in shape))


def checkerboard_level_set(image_shape: Sequence[int], square_size: int = 5) -> np.ndarray:
    """Create scikit-image's checkerboard level set: alternating 0/1 squares (cubes) of `square_size` voxels.

    Args:
        image_shape: the spatial shape.
        square_size: the side of each square, in voxels.

    Returns:
        An int8 array identical to `skimage.segmentation.checkerboard_level_set`.
    """
    return _checkerboard(image_shape, square_size, "cpu").to(torch.int8).numpy()


def disk_level_set(
    image_shape: Sequence[int], *, center: Sequence[float] | None = None, radius: float | None = None
) -> np.ndarray:
    """Create scikit-image's disk (ball) level set, by default centred with radius 3/8 of the smallest dimension.

    Args:
        image_shape: the spatial shape.
        center: the centre in voxel indices; defaults to ``shape // 2``.
        radius: the radius in voxels; defaults to ``min(shape) * 3 / 8``.

    Returns:
        An int8 array identical to `skimage.segmentation.disk_level_set`.
    """
    return _disk(image_shape, center, radius, "cpu").to(torch.int8).contiguous().numpy()


# --------------------------------------------------------------------------------------------------------------
# Morphology
# --------------------------------------------------------------------------------------------------------------

_LINES_2D = ((1, 0), (0, 1), (1, 1), (1, -1))  # the 4 lines of skimage's _P2
_E3 = ((1, 0, 0), (0, 1, 0), (0, 0, 1))
# The 9 planes of skimage's _P3, grouped by their first line (an axis); the second lines move along the other axes:
# axis 0 with e1 (_P3[0]), e2 (_P3[1]), e1+e2 (_P3[3]), e1-e2 (_P3[4]); axis 1 with e2 (_P3[2]), e0+e2 (_P3[5]),
# e0-e2 (_P3[6]); axis 2 with e0+e1 (_P3[7]), e0-e1 (_P3[8]).
_PLANES_3D = (
    (0, ((0, 1, 0), (0, 0, 1), (0, 1, 1), (0, 1, -1))),
    (1, ((0, 0, 1), (1, 0, 1), (1, 0, -1))),
    (2, ((1, 1, 0), (1, -1, 0))),
)


def _pad(u: torch.Tensor) -> torch.Tensor:
    """Zero-pad every spatial dimension of a (B, *spatial) mask by one voxel (scipy's border_value=0)."""
    padded = u.new_zeros((u.shape[0],) + tuple(s + 2 for s in u.shape[1:]))
    padded[(slice(None),) + (slice(1, -1),) * (u.ndim - 1)] = u
    return padded


def _at(padded: torch.Tensor, offset: Sequence[int], sign: int = 1) -> torch.Tensor:
    """The view of a padded mask shifted so that voxel p reads p + sign * offset (zero outside the volume)."""
    index: list[slice] = [slice(None)]
    for size, o in zip(padded.shape[1:], offset):
        start = 1 + sign * o
        index.append(slice(start, start + size - 2))
    return padded[tuple(index)]


def _line_pair(padded: torch.Tensor, offset: Sequence[int], erode: bool) -> torch.Tensor:
    """Combine the two neighbours of every voxel along a line: AND for an erosion, OR for a dilation."""
    if erode:
        return torch.logical_and(_at(padded, offset, 1), _at(padded, offset, -1))
    return torch.logical_or(_at(padded, offset, 1), _at(padded, offset, -1))


def _accumulate(acc: torch.Tensor | None, term: torch.Tensor, union: bool) -> torch.Tensor:
    """In-place OR (union) or AND of `term` into `acc`, starting with `term` itself."""
    if acc is None:
        return term
    return acc.logical_or_(term) if union else acc.logical_and_(term)


def _si_or_is(u: torch.Tensor, erode: bool) -> torch.Tensor:
    """SI (erode=True) or IS (erode=False) of a batched (B, *spatial) bool mask.

    SI = max over the structuring elements of the erosions; IS = min over them of the dilations. Factoring the
    centre voxel out of each line, an erosion by a line is ``u & (u[p+d] & u[p-d])`` and a dilation
    ``u | (u[p+d] | u[p-d])``, so each group of elements sharing a first pass costs one AND/OR per element.
    """
    nd = u.ndim - 1
    padded = _pad(u)
    if nd == 2:
        acc = None
        for line in _LINES_2D:
            acc = _accumulate(acc, _line_pair(padded, line, erode), union=erode)
        assert acc is not None
        return torch.logical_and(u, acc) if erode else torch.logical_or(u, acc)
    out = None
    for axis, second_lines in _PLANES_3D:
        # First pass: the line along `axis`, shared by the group's planes.
        pair = _line_pair(padded, _E3[axis], erode)
        first = torch.logical_and(u, pair) if erode else torch.logical_or(u, pair)
        first_padded = _pad(first)
        acc = None
        for line in second_lines:
            acc = _accumulate(acc, _line_pair(first_padded, line, erode), union=erode)
        assert acc is not None
        group = acc.logical_and_(first) if erode else acc.logical_or_(first)
        out = _accumulate(out, group, union=erode)
    assert out is not None
    return out


def _curvature(u: torch.Tensor, step: int) -> torch.Tensor:
    """The `step`-th smoothing operator of a call: SI∘IS for even steps, IS∘SI for odd ones (skimage's order)."""
    if step % 2 == 0:
        return _si_or_is(_si_or_is(u, erode=False), erode=True)
    return _si_or_is(_si_or_is(u, erode=True), erode=False)


def _box(u: torch.Tensor, erode: bool) -> torch.Tensor:
    """Binary erosion or dilation by the full 3^n cube with border value 0 (scipy), as separable axis passes.

    Separable passes are exact here: a pass along one axis never reads beyond the volume along the others.
    """
    out = u
    for axis in range(u.ndim - 1):
        offset = [0] * (u.ndim - 1)
        offset[axis] = 1
        padded = _pad(out)
        pair = _line_pair(padded, offset, erode)
        out = torch.logical_and(out, pair) if erode else torch.logical_or(out, pair)
    return out


def sup_inf(u: ArrayLike, spatial_dims: int | None = None) -> ArrayLike:
    """Apply the SI operator (max of erosions by lines/planes) to a binary 2D/3D mask or a batch of them.

    Args:
        u: binary mask(s), (H, W), (D, H, W) or with a leading batch dimension.
        spatial_dims: 2 or 3; needed for a (B, H, W) batch.

    Returns:
        An int8 mask of the same shape and array type, equal to `skimage.segmentation.morphsnakes.sup_inf`.
    """
    mask = _as_image(u, spatial_dims)
    return _output(_si_or_is(mask.data != 0, erode=True), mask)


def inf_sup(u: ArrayLike, spatial_dims: int | None = None) -> ArrayLike:
    """Apply the IS operator (min of dilations by lines/planes) to a binary 2D/3D mask or a batch of them.

    Args:
        u: binary mask(s), (H, W), (D, H, W) or with a leading batch dimension.
        spatial_dims: 2 or 3; needed for a (B, H, W) batch.

    Returns:
        An int8 mask of the same shape and array type, equal to `skimage.segmentation.morphsnakes.inf_sup`.
    """
    mask = _as_image(u, spatial_dims)
    return _output(_si_or_is(mask.data != 0, erode=False), mask)


# --------------------------------------------------------------------------------------------------------------
# numpy's arithmetic
# --------------------------------------------------------------------------------------------------------------


def _sqrt(x: torch.Tensor) -> torch.Tensor:
    """Correctly rounded square root, as numpy and CUDA compute it.

    torch's vectorised CPU square root (SLEEF) is not always correctly rounded (about 1% of float64 values differ by
    one ulp from numpy), so CPU tensors go through numpy.
    """
    if x.device.type == "cpu":
        return torch.from_numpy(np.sqrt(x.contiguous().numpy()))
    return torch.sqrt(x)


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    """The torch dtype that computes like a numpy floating dtype."""
    if dtype.kind != "f" or np.dtype(dtype) not in _NP_TO_TORCH:
        raise TypeError(f"no exact torch counterpart for numpy {dtype} arithmetic")
    return _NP_TO_TORCH[np.dtype(dtype)]


@dataclass(frozen=True)
class _PairwisePlan:
    """The shape of numpy's pairwise summation of n values (see `_pairwise_plan`).

    Attributes:
        n: the number of values.
        groups: for each leaf length in 8-value rows q: (q, leaf ids, first row of each leaf).
        leaves: the number of leaves (blocks of at most 128 values summed with 8 accumulators).
        tail: values past the last multiple of 8, added one by one to the last leaf.
        levels: per tree depth, deepest first: (positions of leaves at that depth, their leaf ids, node count).
    """

    n: int
    groups: tuple[tuple[int, np.ndarray, np.ndarray], ...]
    leaves: int
    tail: int
    levels: tuple[tuple[np.ndarray, np.ndarray, int], ...]


@functools.lru_cache(maxsize=64)
def _pairwise_plan(n: int) -> _PairwisePlan:
    """Lay out numpy's pairwise summation tree for n values (``pairwise_sum`` in loops_utils.h.src).

    A block of more than 128 values is split at ``n2 = n // 2`` rounded down to a multiple of 8; a leaf (8 to 128
    values) is summed by 8 interleaved accumulators combined as ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)), then its
    remainder values one by one. Only the last leaf can have a remainder, and every leaf starts at a multiple of 8.
    """
    starts, sizes = np.array([0], dtype=np.int64), np.array([n], dtype=np.int64)
    depth_nodes = []
    while True:
        depth_nodes.append((starts, sizes))
        inner = sizes > _PW_BLOCKSIZE
        if not inner.any():
            break
        s, m = starts[inner], sizes[inner]
        half = m // 2
        half -= half % 8
        starts = np.stack([s, s + half], axis=1).ravel()
        sizes = np.stack([half, m - half], axis=1).ravel()
    leaf_starts = np.sort(np.concatenate([s[z <= _PW_BLOCKSIZE] for s, z in depth_nodes]))
    leaf_sizes = np.concatenate([z[z <= _PW_BLOCKSIZE] for _, z in depth_nodes])[
        np.argsort(np.concatenate([s[z <= _PW_BLOCKSIZE] for s, z in depth_nodes]), kind="stable")
    ]
    rows = leaf_sizes // 8
    groups = tuple((int(q), np.flatnonzero(rows == q), leaf_starts[rows == q] // 8) for q in np.unique(rows) if q > 0)
    levels = []
    for s, z in reversed(depth_nodes):
        is_leaf = z <= _PW_BLOCKSIZE
        levels.append((np.flatnonzero(is_leaf), np.searchsorted(leaf_starts, s[is_leaf]), len(s)))
    return _PairwisePlan(n, groups, len(leaf_starts), int(n % 8), tuple(levels))


@functools.lru_cache(maxsize=64)
def _level_indices(n: int, device: torch.device) -> tuple[tuple[torch.Tensor | None, ...], ...]:
    """Index tensors of `_pairwise_plan(n)`'s levels on `device` (inner positions, leaf positions, leaf ids)."""
    plan = _pairwise_plan(n)
    levels = []
    for leaf_pos, leaf_ids, count in plan.levels:
        if len(leaf_pos) in (0, count):
            ids = None if count == plan.leaves else torch.from_numpy(leaf_ids).to(device)
            levels.append((None, None, ids))
            continue
        is_inner = np.ones(count, dtype=bool)
        is_inner[leaf_pos] = False
        levels.append(tuple(torch.from_numpy(a).to(device) for a in (np.flatnonzero(is_inner), leaf_pos, leaf_ids)))
    return tuple(levels)


def _combine_leaves(leaf_values: torch.Tensor, plan: _PairwisePlan) -> torch.Tensor:
    """Add leaf sums up numpy's pairwise tree, deepest level first; returns one total per row."""
    rows = leaf_values.shape[0]
    child: torch.Tensor | None = None
    for (leaf_pos, _, count), (inner_index, leaf_index, id_index) in zip(
        plan.levels, _level_indices(plan.n, leaf_values.device)
    ):
        if len(leaf_pos) == count:
            # A level of leaves only: the deepest one, or the root leaf of a short sum.
            node = leaf_values if id_index is None else leaf_values[:, id_index]
        else:
            assert child is not None
            # Children of the level's inner nodes are stored pairwise, left then right, in the level below.
            inner = child[:, 0::2] + child[:, 1::2]
            if len(leaf_pos) == 0:
                node = inner
            else:
                node = leaf_values.new_empty((rows, count))
                node[:, inner_index] = inner
                node[:, leaf_index] = leaf_values[:, id_index]
        child = node
    assert child is not None
    return child[:, 0]


def _eight_way(acc: torch.Tensor) -> torch.Tensor:
    """numpy's combination of the 8 accumulators of a leaf: ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7))."""
    r = [acc[..., j] for j in range(8)]
    return ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))


def _uniform_rows(plan: _PairwisePlan) -> int:
    """Rows of 8 per leaf when every leaf has the same size and they tile the values in order (else 0)."""
    if len(plan.groups) == 1 and plan.leaves * plan.groups[0][0] * 8 == (plan.n // 8) * 8:
        return plan.groups[0][0]
    return 0


def _leaf_major(x: torch.Tensor, plan: _PairwisePlan) -> torch.Tensor:
    """Reorder (B, n) values of a uniform plan as (B, q, leaves, 8): row t of every leaf is contiguous."""
    q = _uniform_rows(plan)
    full = plan.leaves * q * 8
    return x[:, :full].view(x.shape[0], plan.leaves, q, 8).transpose(1, 2)


def _pairwise_masked_sums(
    data: torch.Tensor, masks: torch.Tensor, accumulate: torch.dtype, data_leaf_major: torch.Tensor | None = None
) -> torch.Tensor:
    """numpy's ``(data * mask).sum()`` for each mask and each row, with numpy's pairwise summation.

    Args:
        data: (B, n) values in numpy's iteration order.
        masks: (M, B, n) bool tensor in the same order.
        accumulate: the accumulator dtype (float32 for float16 data, as numpy's half loop does).
        data_leaf_major: optionally `data` already reordered contiguously by `_leaf_major` (it is reused across
            iterations, the masks change).

    Returns:
        A (M, B) tensor of sums in `accumulate` precision.
    """
    count, batch, n = masks.shape
    zero = torch.zeros((count, batch), dtype=accumulate, device=data.device)

    def products(i: int | slice) -> torch.Tensor:
        # Products are exact (data times 0 or 1); numpy forms them in the data's dtype, then accumulates.
        return (data[:, i] * masks[:, :, i]).to(accumulate)

    if n < 8:
        total = zero
        for i in range(n):
            total = total + products(i)
        return total
    plan = _pairwise_plan(n)
    full = (n // 8) * 8
    q = _uniform_rows(plan)
    if q:
        # Leaves of q rows of 8 tile the values in order: accumulate row t of every leaf at once, from contiguous
        # leaf-major copies (the hot path for power-of-two sizes such as 128^3).
        values = data_leaf_major if data_leaf_major is not None else _leaf_major(data, plan).contiguous()
        rows = _leaf_major(masks.reshape(count * batch, n), plan).reshape(count, batch, q, plan.leaves, 8)
        rows = rows.contiguous()
        acc = (values[:, 0] * rows[:, :, 0]).to(accumulate)
        term = torch.empty_like(acc)
        for t in range(1, q):
            torch.mul(values[:, t], rows[:, :, t], out=term)
            acc.add_(term)
        leaf_values = _eight_way(acc.view(count * batch, plan.leaves, 8))
    else:
        flat = (data.unsqueeze(0) * masks).to(accumulate).view(count * batch, n)
        grouped = flat[:, :full].view(count * batch, full // 8, 8)
        leaf_values = flat.new_empty((count * batch, plan.leaves))
        for rows_per_leaf, leaf_ids, first_rows in plan.groups:
            index = torch.from_numpy((first_rows[:, None] + np.arange(rows_per_leaf)).ravel()).to(data.device)
            block = grouped.index_select(1, index).view(count * batch, len(leaf_ids), rows_per_leaf, 8)
            acc_rows = block[:, :, 0]
            for t in range(1, rows_per_leaf):
                acc_rows = acc_rows + block[:, :, t]
            leaf_values[:, torch.from_numpy(leaf_ids).to(data.device)] = _eight_way(acc_rows)
    if plan.tail:
        # The values past the last multiple of 8 are added one by one to the last leaf.
        last = leaf_values[:, -1]
        for i in range(full, n):
            last = last + products(i).reshape(-1)
        leaf_values = torch.cat([leaf_values[:, :-1], last[:, None]], dim=1)
    totals = _combine_leaves(leaf_values, plan).view(count, batch)
    return zero + totals  # numpy starts the reduction from the identity 0


def _proxy(shape: Sequence[int], strides: Sequence[int] | None) -> np.ndarray:
    """A tiny numpy array whose axes are ordered in memory like an array with `strides` (C order if None)."""
    small = [min(int(s), 2) for s in shape]
    if strides is None:
        return np.zeros(small, dtype=np.int8)
    nd = len(shape)
    order = sorted(range(nd), key=lambda a: (-abs(strides[a]), a))
    array = np.zeros([small[a] for a in order], dtype=np.int8).transpose(np.argsort(order))
    for axis in range(nd):
        if strides[axis] < 0:
            array = np.flip(array, axis)
        elif strides[axis] == 0 and small[axis] > 1:
            index = [slice(None)] * nd
            index[axis] = slice(0, 1)
            array = np.broadcast_to(array[tuple(index)], array.shape)
    return array


@functools.lru_cache(maxsize=256)
def _sum_order(
    shape: tuple[int, ...], image_strides: tuple[int, ...], level_strides: tuple[int, ...] | None, fresh: bool
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The axis order (outermost first) and reversed axes in which numpy sums ``image * (1 - u)``.

    numpy allocates the product in the memory order its iterator picks from the operands' strides (C order wins
    conflicts) and then sums it in memory order. `u` is ``np.int8(init > 0)`` (the level set's layout) until the
    first smoothing step replaces it with a C-ordered array (`fresh`). Tiny proxies with the same stride ordering
    let numpy itself make the choice.
    """
    image = _proxy(shape, image_strides)
    u = np.zeros([min(s, 2) for s in shape], dtype=np.int8) if fresh else np.int8(_proxy(shape, level_strides) > 0)
    product = image * (1 - u)
    strides = product.strides
    order = tuple(sorted(range(len(shape)), key=lambda a: (-abs(strides[a]) if shape[a] > 1 else 0, a)))
    flips = tuple(a for a in range(len(shape)) if strides[a] < 0 and shape[a] > 1)
    return order, flips


def _in_numpy_order(x: torch.Tensor, order: tuple[int, ...], flips: tuple[int, ...]) -> torch.Tensor:
    """Flatten each item of a (B, *spatial) tensor in numpy's memory order for the product array."""
    if flips:
        x = x.flip([a + 1 for a in flips])
    if order != tuple(range(len(order))):
        x = x.permute(0, *[a + 1 for a in order])
    return x.reshape(x.shape[0], -1)


class _Statistics:
    """numpy's ``(image * u).sum()`` and ``(image * (1 - u)).sum()`` for the Chan-Vese means, per item.

    The product dtype follows numpy (``image * int8``); float products are summed pairwise in numpy's memory order,
    integer products exactly in numpy's default integer accumulator.
    """

    def __init__(self, image: _Image) -> None:
        self.image = image
        self.product_dtype = np.result_type(image.np_dtype, np.int8)  # (1 - u) is int8
        self.floating = self.product_dtype.kind == "f"
        if self.floating:
            self.torch_dtype = _torch_dtype(self.product_dtype)
            self.accumulate = torch.float32 if self.product_dtype == np.float16 else self.torch_dtype
            self.scalar = self.product_dtype.type
        else:
            self.scalar = np.zeros(1, dtype=self.product_dtype).sum().dtype.type
        self._ordered: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[torch.Tensor, torch.Tensor | None]] = {}

    def sums(self, u: torch.Tensor, fresh: bool, level_strides: tuple[int, ...] | None) -> tuple[list, list]:
        """Inside and outside sums per item, as numpy scalars of numpy's result dtype."""
        if not self.floating:
            dims = tuple(range(1, u.ndim))
            inside = (self.image.data * u).sum(dim=dims)
            outside = (self.image.data * ~u).sum(dim=dims)
            return [self.scalar(v) for v in inside.tolist()], [self.scalar(v) for v in outside.tolist()]
        order = _sum_order(self.image.spatial, self.image.item_strides, level_strides, fresh)
        if order not in self._ordered:
            # The image in numpy's order (and leaf-major for the fast path) is prepared once per layout.
            data = _in_numpy_order(self.image.data.to(self.torch_dtype), *order)
            plan = _pairwise_plan(data.shape[1]) if data.shape[1] >= 8 else None
            leaf_major = _leaf_major(data, plan).contiguous() if plan is not None and _uniform_rows(plan) else None
            self._ordered[order] = (data, leaf_major)
        data, leaf_major = self._ordered[order]
        mask = _in_numpy_order(u, *order)
        masks = torch.stack([mask, ~mask])
        sums = _pairwise_masked_sums(data, masks, self.accumulate, leaf_major).to(self.torch_dtype).tolist()
        return [self.scalar(v) for v in sums[0]], [self.scalar(v) for v in sums[1]]


def _gradient_axis(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``np.gradient`` along one dimension with unit spacing, in x's (floating) dtype."""
    n = x.shape[dim]
    out = torch.empty_like(x)
    out.narrow(dim, 1, n - 2).copy_((x.narrow(dim, 2, n - 2) - x.narrow(dim, 0, n - 2)) / 2.0)
    out.narrow(dim, 0, 1).copy_(x.narrow(dim, 1, 1) - x.narrow(dim, 0, 1))
    out.narrow(dim, n - 1, 1).copy_(x.narrow(dim, n - 1, 1) - x.narrow(dim, n - 2, 1))
    return out


def _contour(u: torch.Tensor) -> torch.Tensor:
    """Voxels where ``np.gradient(u)`` is non-zero along some axis: the only ones the attachment can change."""
    mask = torch.zeros_like(u)
    for dim in range(1, u.ndim):
        n = u.shape[dim]
        mask.narrow(dim, 1, n - 2).logical_or_(torch.logical_xor(u.narrow(dim, 2, n - 2), u.narrow(dim, 0, n - 2)))
        edge = torch.logical_xor(u.narrow(dim, 1, 1), u.narrow(dim, 0, 1))
        mask.narrow(dim, 0, 1).logical_or_(edge)
        edge = torch.logical_xor(u.narrow(dim, n - 1, 1), u.narrow(dim, n - 2, 1))
        mask.narrow(dim, n - 1, 1).logical_or_(edge)
    return mask


def _scalar(value: Any, dtype: np.dtype, device: torch.device) -> torch.Tensor:
    """A 0-d tensor holding `value` converted to numpy dtype `dtype` (as numpy converts weak Python scalars)."""
    return torch.tensor(np.asarray(value).astype(dtype).item(), dtype=_torch_dtype(dtype), device=device)


def _per_item(values: Sequence[Any], dtype: np.dtype, device: torch.device, items: torch.Tensor | None) -> Any:
    """Per-item scalars as a tensor broadcastable against the gathered contour voxels."""
    if items is None:
        return _scalar(values[0], dtype, device)
    table = torch.tensor([np.asarray(v).astype(dtype).item() for v in values], dtype=_torch_dtype(dtype))
    return table.to(device)[items]


# --------------------------------------------------------------------------------------------------------------
# Active contours
# --------------------------------------------------------------------------------------------------------------


def _check_iterations(num_iter: int, smoothing: int) -> None:
    if int(num_iter) != num_iter or num_iter < 0:
        raise ValueError(f"num_iter must be a non-negative integer, got {num_iter}")
    if int(smoothing) != smoothing or smoothing < 0:
        raise ValueError(f"smoothing must be a non-negative integer, got {smoothing}")


def morphological_chan_vese(
    image: ArrayLike,
    num_iter: int,
    init_level_set: ArrayLike | str = "checkerboard",
    smoothing: int = 1,
    lambda1: float = 1,
    lambda2: float = 1,
    *,
    spatial_dims: int | None = None,
) -> ArrayLike:
    """Segment with morphological active contours without edges (MorphACWE), like scikit-image, batched.

    Each iteration moves every contour voxel to the region (inside/outside) whose mean intensity it is closer to,
    weighted by `lambda1`/`lambda2`, then smooths the contour `smoothing` times with the SI∘IS / IS∘SI curvature
    operators (starting with SI∘IS on every call).

    Args:
        image: (H, W), (D, H, W), (B, H, W) with ``spatial_dims=2``, or (B, D, H, W); numpy or torch (any device).
        num_iter: number of iterations.
        init_level_set: an array (binarised with ``> 0``; spatial shape, or batched like `image`) or one of
            "checkerboard", "disk" ("circle" is accepted as the old name of "disk").
        smoothing: curvature steps per iteration.
        lambda1: weight of the inside term; larger lets the outside hold a wider range of values.
        lambda2: weight of the outside term.
        spatial_dims: 2 or 3, to disambiguate (B, H, W) from (D, H, W).

    Returns:
        The final level set as int8 0/1, with the input's shape, array type and device; equal voxel for voxel to
        `skimage.segmentation.morphological_chan_vese` on each item (with its curvature alternation reset).
    """
    _check_iterations(num_iter, smoothing)
    img = _as_image(image, spatial_dims)
    u, level_strides = _as_level_set(init_level_set, img)
    u = u.contiguous().clone()
    device = img.data.device
    batch = u.shape[0]
    count = int(np.prod(img.spatial))
    statistics = _Statistics(img)
    step = 0
    for iteration in range(int(num_iter)):
        # Image statistics, summed like numpy (the order depends on u's layout, which smoothing makes C).
        inside_sum, outside_sum = statistics.sums(u, iteration > 0 and smoothing > 0, level_strides)
        inside_count = torch.count_nonzero(u.view(batch, -1), dim=1).tolist()
        c0 = [s / float((count - n) + 1e-8) for s, n in zip(outside_sum, inside_count)]
        c1 = [s / float(n + 1e-8) for s, n in zip(inside_sum, inside_count)]

        # Image attachment, evaluated only where abs(grad u) > 0 (elsewhere aux is 0 and nothing changes).
        flat_u = u.view(-1)
        voxels = _contour(u).view(-1).nonzero().squeeze(1)
        if voxels.numel():
            items = None if batch == 1 else voxels // count
            values = img.data.reshape(-1)[voxels]
            d1 = np.result_type(img.np_dtype, c1[0])
            d0 = np.result_type(img.np_dtype, c0[0])
            diff1 = values.to(_torch_dtype(d1)) - _per_item(c1, d1, device, items)
            diff0 = values.to(_torch_dtype(d0)) - _per_item(c0, d0, device, items)
            m1 = np.result_type(lambda1, d1)
            m2 = np.result_type(lambda2, d0)
            term1 = _scalar(lambda1, m1, device) * (diff1 * diff1).to(_torch_dtype(m1))
            term2 = _scalar(lambda2, m2, device) * (diff0 * diff0).to(_torch_dtype(m2))
            dt = _torch_dtype(np.result_type(m1, m2))
            aux = term1.to(dt) - term2.to(dt)
            current = flat_u[voxels]
            flat_u[voxels] = torch.where(aux < 0, True, torch.where(aux > 0, False, current))

        for _ in range(int(smoothing)):
            u = _curvature(u, step)
            step += 1
    return _output(u, img)


def _percentile40(data: torch.Tensor, np_dtype: np.dtype) -> list[Any]:
    """``np.percentile(item, 40)`` (linear method) of each item of a (B, *spatial) tensor, as numpy scalars."""
    flat = data.reshape(data.shape[0], -1)
    n = flat.shape[1]
    q = np.true_divide(40, 100)
    virtual = (n - 1) * q
    previous = int(np.floor(virtual))
    if virtual >= n - 1:
        previous = nxt = n - 1
    else:
        nxt = previous + 1
    gamma = float(virtual - np.floor(virtual))
    low = torch.kthvalue(flat, previous + 1, dim=1).values.tolist()
    high = torch.kthvalue(flat, nxt + 1, dim=1).values.tolist() if nxt != previous else low
    has_nan = torch.isnan(flat).any(dim=1).tolist() if flat.is_floating_point() else [False] * flat.shape[0]
    out = []
    for lo, hi, nan in zip(low, high, has_nan):
        a = np.array(lo).astype(np_dtype)
        b = np.array(hi).astype(np_dtype)
        # numpy's _lerp, evaluated by numpy on the same 0-d arrays.
        diff = b - a
        lerp = np.add(a, diff * gamma, out=...)
        np.subtract(b, diff * (1 - gamma), out=lerp, where=gamma >= 0.5, casting="unsafe", dtype=type(lerp.dtype))
        value = lerp[()]
        out.append(value.dtype.type(np.nan) if nan else value)
    return out


def morphological_geodesic_active_contour(
    gimage: ArrayLike,
    num_iter: int,
    init_level_set: ArrayLike | str = "disk",
    smoothing: int = 1,
    threshold: float | str = "auto",
    balloon: float = 0,
    *,
    spatial_dims: int | None = None,
) -> ArrayLike:
    """Segment with morphological geodesic active contours (MorphGAC), like scikit-image, batched.

    Each iteration optionally inflates (balloon > 0) or deflates (< 0) the contour where `gimage` exceeds
    ``threshold / |balloon|``, moves it along the gradient of `gimage` (towards small values, i.e. edges), then
    smooths it `smoothing` times with the SI∘IS / IS∘SI operators (starting with SI∘IS on every call).

    Args:
        gimage: the edge-stopping image (see `inverse_gaussian_gradient`), shaped like `morphological_chan_vese`'s
            image. Integer images are treated as float64 (scikit-image raises for them).
        num_iter: number of iterations.
        init_level_set: an array (binarised with ``> 0``) or "checkerboard", "disk" ("circle").
        smoothing: curvature steps per iteration.
        threshold: values of `gimage` below it are borders; "auto" is its 40th percentile (per item).
        balloon: balloon force; its sign inflates or deflates, 0 disables it.
        spatial_dims: 2 or 3, to disambiguate (B, H, W) from (D, H, W).

    Returns:
        The final level set as int8 0/1, with the input's shape, array type and device; equal voxel for voxel to
        `skimage.segmentation.morphological_geodesic_active_contour` on each item (alternation reset).
    """
    _check_iterations(num_iter, smoothing)
    img = _as_image(gimage, spatial_dims)
    u, _ = _as_level_set(init_level_set, img)
    u = u.contiguous().clone()
    device = img.data.device
    batch = u.shape[0]
    float_dtype = img.np_dtype if img.np_dtype.kind == "f" else np.dtype(np.float64)
    data = img.data.to(_torch_dtype(float_dtype))

    balloon_mask = None
    if balloon != 0:
        if isinstance(threshold, str) and threshold == "auto":
            thresholds: list[Any] = _percentile40(img.data, img.np_dtype)
        else:
            thresholds = [threshold] * batch
        limits = [t / np.abs(balloon) for t in thresholds]
        compare = np.result_type(img.np_dtype, limits[0])
        limit = _per_item(limits, compare, device, None if batch == 1 else torch.arange(batch, device=device))
        limit = limit.view(-1, *([1] * len(img.spatial)))
        balloon_mask = img.data.to(_torch_dtype(compare)) > limit

    # np.gradient(gimage), one array per axis, in the image's dtype.
    dimage = [_gradient_axis(data, dim).reshape(-1) for dim in range(1, data.ndim)]
    step = 0
    for _ in range(int(num_iter)):
        if balloon_mask is not None:
            u = torch.where(balloon_mask, _box(u, erode=balloon < 0), u)

        # Twice np.gradient(u) per axis (int8), to find the contour and, halved, to weight the image gradient.
        doubled = []
        for dim in range(1, u.ndim):
            n = u.shape[dim]
            v = u.to(torch.int8)
            g = torch.empty_like(v)
            g.narrow(dim, 1, n - 2).copy_(v.narrow(dim, 2, n - 2) - v.narrow(dim, 0, n - 2))
            g.narrow(dim, 0, 1).copy_((v.narrow(dim, 1, 1) - v.narrow(dim, 0, 1)) * 2)
            g.narrow(dim, n - 1, 1).copy_((v.narrow(dim, n - 1, 1) - v.narrow(dim, n - 2, 1)) * 2)
            doubled.append(g.reshape(-1))
        contour = doubled[0] != 0
        for g in doubled[1:]:
            contour |= g != 0
        voxels = contour.nonzero().squeeze(1)
        if voxels.numel():
            # aux = zeros_like(gimage); aux += dimage_k * du_k: each product is float64, added in float64 and
            # stored back in the image's dtype.
            aux: torch.Tensor | None = None
            for grad, g in zip(dimage, doubled):
                product = grad[voxels].to(torch.float64) * (g[voxels].to(torch.float64) * 0.5)
                total = product if aux is None else aux.to(torch.float64) + product
                aux = total.to(data.dtype)
            assert aux is not None
            flat_u = u.view(-1)
            current = flat_u[voxels]
            flat_u[voxels] = torch.where(aux > 0, True, torch.where(aux < 0, False, current))

        for _ in range(int(smoothing)):
            u = _curvature(u, step)
            step += 1
    return _output(u, img)


# --------------------------------------------------------------------------------------------------------------
# Edge-stopping image
# --------------------------------------------------------------------------------------------------------------


def _gaussian_kernel1d(sigma: float, order: int, radius: int) -> np.ndarray:
    """scipy.ndimage's 1D Gaussian (derivative) kernel, computed with the same numpy expressions."""
    exponent_range = np.arange(order + 1)
    sigma2 = sigma * sigma
    x = np.arange(-radius, radius + 1)
    phi_x = np.exp(-0.5 / sigma2 * x**2)
    phi_x = phi_x / phi_x.sum()
    if order == 0:
        return phi_x
    q = np.zeros(order + 1)
    q[0] = 1
    derivative = np.diag(exponent_range[1:], 1)
    polynomial = np.diag(np.ones(order) / -sigma2, -1)
    q_deriv = derivative + polynomial
    for _ in range(order):
        q = q_deriv.dot(q)
    q = (x[:, None] ** exponent_range).dot(q)
    return q * phi_x


def _to_output_dtype(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Store double-precision results in the output dtype as scipy's C casts do (round floats, truncate ints)."""
    if dtype.is_floating_point:
        return x.to(dtype)
    return x.trunc().to(torch.int64).to(dtype)


def _correlate1d_nearest(x: torch.Tensor, weights: np.ndarray, dim: int, out_dtype: torch.dtype) -> torch.Tensor:
    """scipy's ``correlate1d(mode="nearest", origin=0)`` along `dim`, with NI_Correlate1D's summation order."""
    size = len(weights)
    size1 = size // 2
    size2 = size - size1 - 1
    symmetric = 0
    if size & 1:
        eps = np.finfo(np.float64).eps
        if all(abs(weights[size1 + i] - weights[size1 - i]) <= eps for i in range(1, size1 + 1)):
            symmetric = 1
        elif all(abs(weights[size1 + i] + weights[size1 - i]) <= eps for i in range(1, size1 + 1)):
            symmetric = -1
    n = x.shape[dim]
    # Line buffer extended with the edge values ("nearest"), converted to double as scipy's line buffers are.
    index = torch.arange(-size1, n + size2, device=x.device).clamp_(0, n - 1)
    line = x.to(torch.float64).index_select(dim, index)

    def shifted(j: int) -> torch.Tensor:
        return line.narrow(dim, size1 + j, n)

    w = [float(v) for v in weights]
    if symmetric > 0:
        out = shifted(0) * w[size1]
        for j in range(-size1, 0):
            out = out + (shifted(j) + shifted(-j)) * w[size1 + j]
    elif symmetric < 0:
        out = shifted(0) * w[size1]
        for j in range(-size1, 0):
            out = out + (shifted(j) - shifted(-j)) * w[size1 + j]
    else:
        out = shifted(size2) * w[size1 + size2]
        for j in range(-size1, size2):
            out = out + shifted(j) * w[size1 + j]
    return _to_output_dtype(out, out_dtype)


def _gaussian_derivative(
    x: torch.Tensor, axis: int, sigmas: Sequence[float], out_dtype: torch.dtype, truncate: float = 4.0
) -> torch.Tensor:
    """``gaussian_filter(x, sigma, order=e_axis, mode="nearest")``: 1D passes over the axes in order."""
    out = x
    passes = 0
    for a, sigma in enumerate(sigmas):
        if sigma <= 1e-15:
            continue
        radius = int(truncate * float(sigma) + 0.5)
        weights = np.ascontiguousarray(_gaussian_kernel1d(float(sigma), int(a == axis), radius)[::-1])
        out = _correlate1d_nearest(out, weights, a + 1, out_dtype)
        passes += 1
    return out if passes else x.to(out_dtype).clone()


def _numpy_sqrt(x: torch.Tensor, np_dtype: np.dtype) -> torch.Tensor:
    """``np.sqrt(x, out=x, casting="unsafe")``: numpy's loop dtype for `np_dtype`, cast back like numpy."""
    loop = np.sqrt(np.zeros(1, dtype=np_dtype)).dtype
    root = _sqrt(x.to(_torch_dtype(loop)))
    return root if root.dtype == x.dtype else _to_output_dtype(root.to(torch.float64), x.dtype)


def inverse_gaussian_gradient(
    image: ArrayLike, alpha: float = 100.0, sigma: float | Sequence[float] = 5.0, *, spatial_dims: int | None = None
) -> ArrayLike:
    """Compute the edge-stopping image for `morphological_geodesic_active_contour`: ``1 / sqrt(1 + alpha |∇G_σ * I|)``.

    Flat areas map close to 1 and edges close to 0. Same as `skimage.segmentation.inverse_gaussian_gradient`
    (scipy's Gaussian gradient magnitude with ``mode="nearest"``), batched and on any device.

    Args:
        image: shaped like `morphological_chan_vese`'s image. Float images keep their dtype; signed integer images
            follow scipy (integer intermediate arrays, float result).
        alpha: steepness of the inversion.
        sigma: standard deviation of the Gaussian, in voxels (one value or one per spatial axis).
        spatial_dims: 2 or 3, to disambiguate (B, H, W) from (D, H, W).

    Returns:
        The preprocessed image with the input's shape, array type and device.
    """
    img = _as_image(image, spatial_dims)
    if img.np_dtype.kind in "bu":
        raise TypeError(f"unsigned/bool images are not supported (scipy's casts are undefined), got {img.np_dtype}")
    nd = len(img.spatial)
    sigmas = [float(s) for s in (np.ravel(sigma) if np.ndim(sigma) else [sigma] * nd)]
    if len(sigmas) != nd:
        raise ValueError(f"expected {nd} sigmas, got {len(sigmas)}")
    out_dtype = _NP_TO_TORCH[img.np_dtype] if img.np_dtype in _NP_TO_TORCH else torch.float64
    source = img.data
    magnitude: torch.Tensor | None = None
    for axis in range(nd):
        derivative = _gaussian_derivative(source, axis, sigmas, out_dtype)
        square = derivative * derivative
        magnitude = square if magnitude is None else magnitude + square
    assert magnitude is not None
    magnitude = _numpy_sqrt(magnitude, img.np_dtype)
    # 1.0 / np.sqrt(1.0 + alpha * gradnorm), with numpy's promotions for the scalars.
    scaled_dtype = np.result_type(alpha, img.np_dtype)
    if scaled_dtype.kind == "f":
        scaled = _scalar(alpha, scaled_dtype, magnitude.device) * magnitude.to(_torch_dtype(scaled_dtype))
    else:
        scaled = magnitude * int(alpha)
    shifted_dtype = np.result_type(1.0, scaled_dtype)
    shifted = _scalar(1.0, shifted_dtype, magnitude.device) + scaled.to(_torch_dtype(shifted_dtype))
    root = _sqrt(shifted)
    result = _scalar(1.0, shifted_dtype, magnitude.device) / root
    out = result if img.batched else result[0]
    return out.cpu().numpy() if img.numpy_io else out
