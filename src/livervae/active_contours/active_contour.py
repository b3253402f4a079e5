"""Morphological active contours (morphsnakes) in torch: batched, on any device, voxel-exact with scikit-image.

The tumour model's boundaries are refined by a morphological Chan-Vese contour (Márquez-Neila, Baumela and Alvarez,
PAMI 2014). scikit-image 0.26 implements it in `skimage.segmentation.morphsnakes` with scipy's binary morphology,
one volume at a time on the CPU. LiverVAE re-implements the same algorithms with vectorised torch operations so
that a batch of 2D images or 3D volumes is processed at once, on the CPU or a GPU. The work is split by job:
`morphology` (bit-packed SI/IS, cube morphology and contour voxels), `numpy_exact` (numpy's floating-point
arithmetic), `edges` (the edge-stopping image), `level_sets` and `inputs`; this module holds the two algorithms.

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

from typing import Any

import numpy as np
import torch

from livervae.active_contours.inputs import ArrayLike, as_image, as_output
from livervae.active_contours.level_sets import as_level_set
from livervae.active_contours.morphology import PackedGrid
from livervae.active_contours.numpy_exact import (
    MaskedSums,
    gradient_axis,
    per_item,
    percentile40,
    scalar_tensor,
    torch_dtype,
)


def _packed_operator(u: ArrayLike, spatial_dims: int | None, name: str) -> ArrayLike:
    """Apply `PackedGrid.<name>` (sup_inf or inf_sup) to binary mask(s), returning int8 in the input's array type."""
    mask = as_image(u, spatial_dims)
    grid = PackedGrid(mask.data.shape, mask.data.device)
    return as_output(grid.unpack(getattr(grid, name)(grid.pack(mask.data != 0))), mask)


def sup_inf(u: ArrayLike, spatial_dims: int | None = None) -> ArrayLike:
    """Apply the SI operator (max of erosions by lines/planes) to a binary 2D/3D mask or a batch of them.

    Args:
        u: binary mask(s), (H, W), (D, H, W) or with a leading batch dimension.
        spatial_dims: 2 or 3; needed for a (B, H, W) batch.

    Returns:
        An int8 mask of the same shape and array type, equal to `skimage.segmentation.morphsnakes.sup_inf`.
    """
    return _packed_operator(u, spatial_dims, "sup_inf")


def inf_sup(u: ArrayLike, spatial_dims: int | None = None) -> ArrayLike:
    """Apply the IS operator (min of dilations by lines/planes) to a binary 2D/3D mask or a batch of them.

    Args:
        u: binary mask(s), (H, W), (D, H, W) or with a leading batch dimension.
        spatial_dims: 2 or 3; needed for a (B, H, W) batch.

    Returns:
        An int8 mask of the same shape and array type, equal to `skimage.segmentation.morphsnakes.inf_sup`.
    """
    return _packed_operator(u, spatial_dims, "inf_sup")


# --------------------------------------------------------------------------------------------------------------
# Active contours
# --------------------------------------------------------------------------------------------------------------


def _check_iterations(num_iter: int, smoothing: int) -> None:
    if int(num_iter) != num_iter or num_iter < 0:
        raise ValueError(f"num_iter must be a non-negative integer, got {num_iter}")
    if int(smoothing) != smoothing or smoothing < 0:
        raise ValueError(f"smoothing must be a non-negative integer, got {smoothing}")


def _smooth(grid: PackedGrid, words: torch.Tensor, smoothing: int, step: int) -> tuple[torch.Tensor, int]:
    """Apply `smoothing` curvature steps from the call's `step`-th; returns the words and the next step."""
    for _ in range(smoothing):
        words = grid.curvature(words, step)
        step += 1
    return words, step


def _doubled_gradients(grid: PackedGrid, words: torch.Tensor, voxels: torch.Tensor) -> list[torch.Tensor]:
    """Twice ``np.gradient(u)`` along each spatial axis (int8 arithmetic), at the flat indices `voxels` only.

    Central differences inside (``u[p+1] - u[p-1]``, i.e. twice the halved difference) and doubled one-sided
    differences on the volume's faces.
    """
    spatial = grid.spatial
    strides = [int(np.prod(spatial[a + 1 :])) for a in range(len(spatial))]
    out = []
    for size, stride in zip(spatial, strides):
        coordinate = (voxels // stride) % size
        ahead = grid.values(words, torch.where(coordinate < size - 1, voxels + stride, voxels)).to(torch.int8)
        behind = grid.values(words, torch.where(coordinate > 0, voxels - stride, voxels)).to(torch.int8)
        difference = ahead - behind
        on_face = (coordinate == 0) | (coordinate == size - 1)
        out.append(torch.where(on_face, difference * 2, difference))
    return out


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
    img = as_image(image, spatial_dims)
    u, level_strides = as_level_set(init_level_set, img)
    grid = PackedGrid(img.data.shape, img.data.device)
    words = grid.pack(u)
    device = img.data.device
    batch = grid.shape[0]
    count = int(np.prod(img.spatial))
    statistics = MaskedSums(img)
    flat_image = img.data.reshape(-1)
    step = 0
    for iteration in range(int(num_iter)):
        # Image statistics, summed like numpy (the order depends on u's layout, which smoothing makes C).
        inside_sum, outside_sum = statistics.sums(grid.unpack(words), iteration > 0 and smoothing > 0, level_strides)
        inside_count = grid.counts(words).tolist()
        c0 = [s / float((count - n) + 1e-8) for s, n in zip(outside_sum, inside_count)]
        c1 = [s / float(n + 1e-8) for s, n in zip(inside_sum, inside_count)]

        # Image attachment, evaluated only where abs(grad u) > 0 (elsewhere aux is 0 and nothing changes).
        voxels = grid.voxels(grid.contour(words))
        if voxels.numel():
            items = None if batch == 1 else voxels // count
            values = flat_image[voxels]
            d1 = np.result_type(img.np_dtype, c1[0])
            d0 = np.result_type(img.np_dtype, c0[0])
            diff1 = values.to(torch_dtype(d1)) - per_item(c1, d1, device, items)
            diff0 = values.to(torch_dtype(d0)) - per_item(c0, d0, device, items)
            m1 = np.result_type(lambda1, d1)
            m2 = np.result_type(lambda2, d0)
            term1 = scalar_tensor(lambda1, m1, device) * (diff1 * diff1).to(torch_dtype(m1))
            term2 = scalar_tensor(lambda2, m2, device) * (diff0 * diff0).to(torch_dtype(m2))
            dt = torch_dtype(np.result_type(m1, m2))
            aux = term1.to(dt) - term2.to(dt)
            inside = torch.where(aux < 0, True, torch.where(aux > 0, False, grid.values(words, voxels)))
            grid.assign(words, voxels, inside)

        words, step = _smooth(grid, words, int(smoothing), step)
    return as_output(grid.unpack(words), img)


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
    img = as_image(gimage, spatial_dims)
    u, _ = as_level_set(init_level_set, img)
    grid = PackedGrid(img.data.shape, img.data.device)
    words = grid.pack(u)
    device = img.data.device
    batch = grid.shape[0]
    float_dtype = img.np_dtype if img.np_dtype.kind == "f" else np.dtype(np.float64)
    data = img.data.to(torch_dtype(float_dtype))

    balloon_mask = None
    if balloon != 0:
        if isinstance(threshold, str) and threshold == "auto":
            thresholds: list[Any] = percentile40(img.data, img.np_dtype)
        else:
            thresholds = [threshold] * batch
        limits = [t / np.abs(balloon) for t in thresholds]
        compare = np.result_type(img.np_dtype, limits[0])
        limit = per_item(limits, compare, device, None if batch == 1 else torch.arange(batch, device=device))
        limit = limit.view(-1, *([1] * len(img.spatial)))
        balloon_mask = grid.pack(img.data.to(torch_dtype(compare)) > limit)

    # np.gradient(gimage), one array per axis, in the image's dtype.
    dimage = [gradient_axis(data, dim).reshape(-1) for dim in range(1, data.ndim)]
    step = 0
    for _ in range(int(num_iter)):
        if balloon_mask is not None:
            moved = grid.box(words, erode=balloon < 0)
            words = (moved & balloon_mask) | (words & ~balloon_mask)

        voxels = grid.voxels(grid.contour(words))
        if voxels.numel():
            # aux = zeros_like(gimage); aux += dimage_k * du_k: each product is float64, added in float64 and
            # stored back in the image's dtype.
            aux: torch.Tensor | None = None
            for grad, doubled in zip(dimage, _doubled_gradients(grid, words, voxels)):
                product = grad[voxels].to(torch.float64) * (doubled.to(torch.float64) * 0.5)
                total = product if aux is None else aux.to(torch.float64) + product
                aux = total.to(data.dtype)
            assert aux is not None
            inside = torch.where(aux > 0, True, torch.where(aux < 0, False, grid.values(words, voxels)))
            grid.assign(words, voxels, inside)

        words, step = _smooth(grid, words, int(smoothing), step)
    return as_output(grid.unpack(words), img)
