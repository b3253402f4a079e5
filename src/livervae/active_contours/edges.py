"""The edge-stopping image of the geodesic snake, exactly as scikit-image computes it with scipy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from livervae.active_contours.inputs import ArrayLike, as_image
from livervae.active_contours.numpy_exact import NP_TO_TORCH, exact_sqrt, scalar_tensor, torch_dtype


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
    root = exact_sqrt(x.to(torch_dtype(loop)))
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
    img = as_image(image, spatial_dims)
    if img.np_dtype.kind in "bu":
        raise TypeError(f"unsigned/bool images are not supported (scipy's casts are undefined), got {img.np_dtype}")
    nd = len(img.spatial)
    sigmas = [float(s) for s in (np.ravel(sigma) if np.ndim(sigma) else [sigma] * nd)]
    if len(sigmas) != nd:
        raise ValueError(f"expected {nd} sigmas, got {len(sigmas)}")
    out_dtype = NP_TO_TORCH[img.np_dtype] if img.np_dtype in NP_TO_TORCH else torch.float64
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
        scaled = scalar_tensor(alpha, scaled_dtype, magnitude.device) * magnitude.to(torch_dtype(scaled_dtype))
    else:
        scaled = magnitude * int(alpha)
    shifted_dtype = np.result_type(1.0, scaled_dtype)
    shifted = scalar_tensor(1.0, shifted_dtype, magnitude.device) + scaled.to(torch_dtype(shifted_dtype))
    root = exact_sqrt(shifted)
    result = scalar_tensor(1.0, shifted_dtype, magnitude.device) / root
    out = result if img.batched else result[0]
    return out.cpu().numpy() if img.numpy_io else out
