"""Inputs of the morphological snakes: arrays or tensors, batched or not, with what numpy would have seen."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from livervae.active_contours.numpy_exact import TORCH_TO_NP

ArrayLike = np.ndarray | torch.Tensor


@dataclass
class ImageBatch:
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


def resolve_spatial_dims(ndim: int, spatial_dims: int | None) -> int:
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


def as_image(array: ArrayLike, spatial_dims: int | None, device: torch.device | None = None) -> ImageBatch:
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
        if tensor.dtype not in TORCH_TO_NP:
            raise TypeError(f"unsupported image dtype {tensor.dtype}")
        np_dtype = TORCH_TO_NP[tensor.dtype]
        strides = tuple(int(s) * tensor.element_size() for s in tensor.stride())
        data = tensor.detach()
        if device is not None:
            data = data.to(device)
        if np_dtype.kind in "biu":
            data = data.to(torch.float64 if np_dtype == np.uint64 else torch.int64)
    nd = resolve_spatial_dims(data.ndim, spatial_dims)
    batched = data.ndim == nd + 1
    if not batched:
        data = data.unsqueeze(0)
    else:
        strides = strides[1:]
    if any(s < 2 for s in data.shape[1:]):
        # np.gradient needs two samples along every axis; scikit-image raises the same way.
        raise ValueError(f"every spatial dimension needs at least 2 voxels, got {tuple(data.shape[1:])}")
    return ImageBatch(data, np_dtype, strides, batched, numpy_io)


def as_output(u: torch.Tensor, image: ImageBatch) -> ArrayLike:
    """Return the level set as scikit-image does (int8), with the caller's batch layout and array type."""
    out = u.to(torch.int8)
    if not image.batched:
        out = out[0]
    return out.cpu().numpy() if image.numpy_io else out
