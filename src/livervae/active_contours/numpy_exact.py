"""numpy's floating-point arithmetic reproduced with torch operations, for decisions that must match numpy exactly.

Morphological snakes decide voxel by voxel from the sign of floating-point expressions, so a torch port equals
scikit-image only if it rounds as numpy does: pairwise summation in numpy's memory order, NEP 50 scalar promotion,
``np.gradient``'s differences and ``np.percentile``'s interpolation. Elementwise operations are separate torch
operations (never fused multiply-adds), so CPU and CUDA round the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

NP_TO_TORCH: dict[np.dtype, torch.dtype] = {
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
TORCH_TO_NP: dict[torch.dtype, np.dtype] = {v: k for k, v in NP_TO_TORCH.items()}
TORCH_TO_NP.update({torch.uint16: np.dtype(np.uint16), torch.uint32: np.dtype(np.uint32)})
TORCH_TO_NP[torch.uint64] = np.dtype(np.uint64)

# Leaf size of numpy's pairwise summation (PW_BLOCKSIZE in numpy/_core/src/umath/loops_utils.h.src).
_PW_BLOCKSIZE = 128


def exact_sqrt(x: torch.Tensor) -> torch.Tensor:
    """Correctly rounded square root, as numpy and CUDA compute it.

    torch's vectorised CPU square root (SLEEF) is not always correctly rounded (about 1% of float64 values differ by
    one ulp from numpy), so CPU tensors go through numpy.
    """
    if x.device.type == "cpu":
        return torch.from_numpy(np.sqrt(x.contiguous().numpy()))
    return torch.sqrt(x)


def torch_dtype(dtype: np.dtype) -> torch.dtype:
    """The torch dtype that computes like a numpy floating dtype."""
    if dtype.kind != "f" or np.dtype(dtype) not in NP_TO_TORCH:
        raise TypeError(f"no exact torch counterpart for numpy {dtype} arithmetic")
    return NP_TO_TORCH[np.dtype(dtype)]


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
    data: torch.Tensor,
    mask: torch.Tensor,
    accumulate: torch.dtype,
    data_leaf_major: torch.Tensor | None = None,
    finite: bool = False,
) -> torch.Tensor:
    """numpy's ``(data * mask).sum()`` and ``(data * (1 - mask)).sum()`` for each row, with numpy's pairwise summation.

    Args:
        data: (B, n) values in numpy's iteration order.
        mask: (B, n) bool tensor in the same order.
        accumulate: the accumulator dtype (float32 for float16 data, as numpy's half loop does).
        data_leaf_major: optionally `data` already reordered contiguously by `_leaf_major` (it is reused across
            iterations, the masks change).
        finite: whether every value is finite (then the outside products are differences, a cheaper exact form).

    Returns:
        A (2, B) tensor of sums in `accumulate` precision: inside (mask) first, then outside.
    """
    batch, n = mask.shape
    zero = torch.zeros((2, batch), dtype=accumulate, device=data.device)
    # Products are exact (data times 0 or 1); numpy forms them in the data's dtype, then accumulates. For finite
    # data ``data - data * mask`` equals ``data * (1 - mask)`` up to the sign of zero, which no sum decision sees.

    def products(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out = torch.empty((2,) + tuple(values.shape), dtype=values.dtype, device=values.device)
        weight = weights.to(values.dtype, memory_format=torch.contiguous_format)
        torch.mul(values, weight, out=out[0])
        if finite:
            torch.sub(values, out[0], out=out[1])
        else:
            torch.mul(values, 1 - weight, out=out[1])
        return out

    if n < 8:
        total = zero
        prod = products(data, mask).to(accumulate)
        for i in range(n):
            total = total + prod[:, :, i]
        return total
    plan = _pairwise_plan(n)
    full = (n // 8) * 8
    q = _uniform_rows(plan)
    if q:
        # Leaves of q rows of 8 tile the values in order: accumulate row t of every leaf at once, from contiguous
        # leaf-major copies (the hot path for power-of-two sizes such as 128^3).
        values = data_leaf_major if data_leaf_major is not None else _leaf_major(data, plan).contiguous()
        prod = products(values, _leaf_major(mask, plan))
        acc = prod[:, :, 0].to(accumulate, copy=True)
        for t in range(1, q):
            acc.add_(prod[:, :, t])
        leaf_values = _eight_way(acc.view(2 * batch, plan.leaves, 8))
    else:
        flat = products(data, mask).to(accumulate).view(2 * batch, n)
        grouped = flat[:, :full].view(2 * batch, full // 8, 8)
        leaf_values = flat.new_empty((2 * batch, plan.leaves))
        for rows_per_leaf, leaf_ids, first_rows in plan.groups:
            index = torch.from_numpy((first_rows[:, None] + np.arange(rows_per_leaf)).ravel()).to(data.device)
            block = grouped.index_select(1, index).view(2 * batch, len(leaf_ids), rows_per_leaf, 8)
            acc_rows = block[:, :, 0]
            for t in range(1, rows_per_leaf):
                acc_rows = acc_rows + block[:, :, t]
            leaf_values[:, torch.from_numpy(leaf_ids).to(data.device)] = _eight_way(acc_rows)
    if plan.tail:
        # The values past the last multiple of 8 are added one by one to the last leaf.
        tail = products(data[:, full:], mask[:, full:]).to(accumulate).view(2 * batch, n - full)
        last = leaf_values[:, -1]
        for i in range(n - full):
            last = last + tail[:, i]
        leaf_values = torch.cat([leaf_values[:, :-1], last[:, None]], dim=1)
    totals = _combine_leaves(leaf_values, plan).view(2, batch)
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


class SummedImage(Protocol):
    """What `MaskedSums` needs of an image (`inputs.ImageBatch` is one; typed here so this module imports none)."""

    data: torch.Tensor
    np_dtype: np.dtype
    item_strides: tuple[int, ...]

    @property
    def spatial(self) -> tuple[int, ...]: ...


class MaskedSums:
    """numpy's ``(image * u).sum()`` and ``(image * (1 - u)).sum()`` for the Chan-Vese means, per item.

    The product dtype follows numpy (``image * int8``); float products are summed pairwise in numpy's memory order,
    integer products exactly in numpy's default integer accumulator.
    """

    def __init__(self, image: SummedImage) -> None:
        self.image = image
        self.product_dtype = np.result_type(image.np_dtype, np.int8)  # (1 - u) is int8
        self.floating = self.product_dtype.kind == "f"
        if self.floating:
            self.torch_dtype = torch_dtype(self.product_dtype)
            self.accumulate = torch.float32 if self.product_dtype == np.float16 else self.torch_dtype
            self.scalar = self.product_dtype.type
        else:
            self.scalar = np.zeros(1, dtype=self.product_dtype).sum().dtype.type
        self._finite: bool | None = None
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
        if self._finite is None:
            self._finite = bool(torch.isfinite(self.image.data).all())
        data, leaf_major = self._ordered[order]
        mask = _in_numpy_order(u, *order)
        sums = _pairwise_masked_sums(data, mask, self.accumulate, leaf_major, self._finite)
        sums = sums.to(self.torch_dtype).tolist()
        return [self.scalar(v) for v in sums[0]], [self.scalar(v) for v in sums[1]]


def gradient_axis(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``np.gradient`` along one dimension with unit spacing, in x's (floating) dtype."""
    n = x.shape[dim]
    out = torch.empty_like(x)
    out.narrow(dim, 1, n - 2).copy_((x.narrow(dim, 2, n - 2) - x.narrow(dim, 0, n - 2)) / 2.0)
    out.narrow(dim, 0, 1).copy_(x.narrow(dim, 1, 1) - x.narrow(dim, 0, 1))
    out.narrow(dim, n - 1, 1).copy_(x.narrow(dim, n - 1, 1) - x.narrow(dim, n - 2, 1))
    return out


def scalar_tensor(value: Any, dtype: np.dtype, device: torch.device) -> torch.Tensor:
    """A 0-d tensor holding `value` converted to numpy dtype `dtype` (as numpy converts weak Python scalars)."""
    return torch.tensor(np.asarray(value).astype(dtype).item(), dtype=torch_dtype(dtype), device=device)


def per_item(values: Sequence[Any], dtype: np.dtype, device: torch.device, items: torch.Tensor | None) -> Any:
    """Per-item scalars as a tensor broadcastable against the gathered contour voxels."""
    if items is None:
        return scalar_tensor(values[0], dtype, device)
    table = torch.tensor([np.asarray(v).astype(dtype).item() for v in values], dtype=torch_dtype(dtype))
    return table.to(device)[items]


def percentile40(data: torch.Tensor, np_dtype: np.dtype) -> list[Any]:
    """``np.percentile(item, 40)`` (linear method) of each item of a (B, *spatial) tensor, as numpy scalars."""
    flat = data.reshape(data.shape[0], -1)
    if flat.device.type == "cpu":
        # numpy itself (a partition, much faster than torch's CPU kthvalue).
        return [np.percentile(row.numpy().astype(np_dtype, copy=False), 40) for row in flat]
    return percentile40_on_device(flat, np_dtype)


def percentile40_on_device(flat: torch.Tensor, np_dtype: np.dtype) -> list[Any]:
    """``np.percentile(row, 40)`` of each row of a (B, n) tensor from two order statistics found where it lives."""
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
