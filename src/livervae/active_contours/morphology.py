"""Binary morphology of morphological snakes on bit-packed masks: SI, IS, cube erosion/dilation, contour voxels.

A (B, *spatial) bool mask is packed along its last axis into int64 words, 64 voxels a word (bit ``x % 64`` of word
``x // 64`` holds voxel ``x``), and the words of the whole batch are kept as one flat contiguous tensor. One bitwise
operation then handles 64 voxels: a 128³ mask is 32,768 words instead of 2 million bytes. Reading the neighbour at
an offset is a flat roll by the offset's word stride, a bit shift with the carry from the adjacent word for the last
axis, and an AND with a cached mask that zeroes every voxel whose neighbour lies outside the volume (scipy's
``border_value=0`` for both erosion and dilation) or in another row or batch item. Padding bits (positions at or
beyond the last axis's length) stay zero in every packed array, so they never leak into the volume.

The structuring elements are scikit-image's (``skimage.segmentation.morphsnakes``): SI ("sup-inf") is the pointwise
maximum of the erosions by the 4 three-pixel lines through the centre in 2D (two axes, two diagonals) or the 9
three-by-three planes in 3D (3 axis planes, 6 diagonal planes); IS ("inf-sup") is the minimum of the dilations by
the same family. A 3D plane is the Minkowski sum of two 3-voxel lines along disjoint coordinates, so its erosion
(dilation) is two line erosions (dilations) in sequence, and planes sharing their first line share that pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["PackedGrid"]

_WORD = 64
_LOW_63 = 0x7FFFFFFFFFFFFFFF  # clears the sign-extended bit after an arithmetic right shift (a logical shift)
# Multiplying a word of eight 0/1 bytes by _GATHER puts byte k's value at bit 56 + k (no carries reach those bits).
_GATHER = 0x0102040810204080
# Multiplying a byte by _ONES copies it into all eight bytes; _SPREAD keeps bit k in byte k; adding 0x7F per byte
# moves any set bit to the byte's top bit.
_ONES = 0x0101010101010101
_SPREAD = 0x8040201008040201 - (1 << 64)
_LOW_7 = 0x7F7F7F7F7F7F7F7F

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


def _bit(index: int) -> int:
    """The int64 value with only bit `index` (0-63) set; bit 63 is the sign bit."""
    return -(1 << 63) if index == _WORD - 1 else 1 << index


def _as_int64(value: int) -> int:
    """An unsigned 64-bit pattern as the signed int64 with the same bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


class PackedGrid:
    """Bit-packed binary morphology for masks of one (B, *spatial) shape on one device.

    Args:
        shape: (B, H, W) for 2D or (B, D, H, W) for 3D masks; every spatial size at least 1.
        device: where the words live.
    """

    def __init__(self, shape: Sequence[int], device: torch.device | str) -> None:
        self.shape = tuple(int(s) for s in shape)
        if len(self.shape) not in (3, 4):
            raise ValueError(f"expected a (B, H, W) or (B, D, H, W) shape, got {self.shape}")
        self.device = torch.device(device)
        self.spatial = self.shape[1:]
        self.width = self.spatial[-1]
        self.words_per_row = -(-self.width // _WORD)
        # (B, *spatial[:-1], words) in C order; word strides of the non-last spatial axes.
        self.words_shape = self.shape[:-1] + (self.words_per_row,)
        self.count = int(np.prod(self.words_shape))
        self._strides = [int(np.prod(self.words_shape[a + 2 :])) for a in range(len(self.spatial) - 1)]
        self._masks: dict[tuple, torch.Tensor] = {}

    # -- conversion ---------------------------------------------------------------------------------------------

    def pack(self, u: torch.Tensor) -> torch.Tensor:
        """Pack a (B, *spatial) bool mask into flat int64 words."""
        padded = self.words_per_row * _WORD
        if padded != self.width:
            u = torch.nn.functional.pad(u, (0, padded - self.width))
        octets = u.contiguous().view(torch.uint8).reshape(-1, 8).view(torch.int64).reshape(-1)
        # Eight 0/1 bytes (voxels 8k..8k+7) become one byte; bytes in memory order are little-endian words.
        packed = torch.bitwise_right_shift(octets * _GATHER, 56).bitwise_and_(0xFF).to(torch.uint8)
        return packed.view(torch.int64)

    def unpack(self, words: torch.Tensor) -> torch.Tensor:
        """Unpack flat words back to a (B, *spatial) bool mask."""
        octets = words.contiguous().view(torch.uint8).to(torch.int64)
        spread = (octets * _ONES).bitwise_and_(_SPREAD).add_(_LOW_7)
        bits = torch.bitwise_right_shift(spread, 7).bitwise_and_(_ONES)
        mask = bits.view(torch.uint8).view(torch.bool).view(self.shape[:-1] + (self.words_per_row * _WORD,))
        return mask[..., : self.width]

    # -- masks --------------------------------------------------------------------------------------------------

    def _row_valid(self, offset: Sequence[int]) -> np.ndarray:
        """Words whose row (non-last coordinates) plus `offset` stays inside the volume, as an int64 0/-1 array."""
        valid = np.ones(self.words_shape, dtype=bool)
        for axis, step in enumerate(offset[:-1]):
            if step == 0:
                continue
            index = [slice(None)] * len(self.words_shape)
            index[axis + 1] = slice(-1, None) if step > 0 else slice(0, 1)
            valid[tuple(index)] = False
        return np.where(valid, -1, 0).astype(np.int64)

    def _bit_mask(self, step: int) -> np.ndarray:
        """Per-word bits a last-axis shift by `step` may set: no carry across rows, no padding bits."""
        mask = np.full(self.words_shape, -1, dtype=np.int64)
        valid_last = self.width - (self.words_per_row - 1) * _WORD
        last = -1 if valid_last == _WORD else (1 << valid_last) - 1
        if step > 0:
            # Bit 63 of a row's last word reads the next row (or a padding bit): clear it.
            mask[..., -1] &= _LOW_63
        elif step < 0:
            # Bit 0 of a row's first word reads the previous row; the last valid voxel moves onto padding.
            mask[..., 0] &= ~1
            mask[..., -1] &= last
        return mask

    def _mask(self, key: tuple, build) -> torch.Tensor:
        if key not in self._masks:
            self._masks[key] = torch.from_numpy(np.ascontiguousarray(build()).reshape(-1)).to(self.device)
        return self._masks[key]

    def _offset_mask(self, offset: tuple[int, ...]) -> torch.Tensor:
        return self._mask(("offset", offset), lambda: self._row_valid(offset) & self._bit_mask(offset[-1]))

    def _face_masks(self, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Voxels on the first and on the last face along a spatial axis."""

        def build(last: bool) -> np.ndarray:
            mask = np.zeros(self.words_shape, dtype=np.int64)
            if axis == len(self.spatial) - 1:
                if last:
                    mask[..., -1] = _bit((self.width - 1) % _WORD)
                else:
                    mask[..., 0] = 1
            else:
                index = [slice(None)] * len(self.words_shape)
                index[axis + 1] = -1 if last else 0
                mask[tuple(index)] = -1
            return mask

        return self._mask(("face", axis, False), lambda: build(False)), self._mask(
            ("face", axis, True), lambda: build(True)
        )

    # -- neighbours ---------------------------------------------------------------------------------------------

    def shifted(self, words: torch.Tensor, offset: Sequence[int]) -> torch.Tensor:
        """Words whose voxel p reads voxel p + offset of `words`, zero where p + offset is outside the volume."""
        offset = tuple(int(s) for s in offset)
        shift = sum(step * stride for step, stride in zip(offset[:-1], self._strides))
        out = torch.roll(words, -shift) if shift else words
        step = offset[-1]
        if step > 0:
            # Bit x takes bit x + 1: shift right within the word, carry bit 0 of the next word into bit 63.
            carry = torch.bitwise_left_shift(torch.roll(out, -1), 63)
            out = torch.bitwise_right_shift(out, 1).bitwise_and_(_LOW_63).bitwise_or_(carry)
        elif step < 0:
            # Bit x takes bit x - 1: shift left, carry bit 63 of the previous word into bit 0.
            carry = torch.bitwise_right_shift(torch.roll(out, 1), 63).bitwise_and_(1)
            out = torch.bitwise_left_shift(out, 1).bitwise_or_(carry)
        if out is words:
            # The zero offset: a copy, since callers combine neighbours in place.
            return words.clone()
        return out.bitwise_and_(self._offset_mask(offset))

    def _line_pair(self, words: torch.Tensor, line: Sequence[int], erode: bool) -> torch.Tensor:
        """Both neighbours of every voxel along a line combined: AND for an erosion, OR for a dilation."""
        ahead = self.shifted(words, line)
        behind = self.shifted(words, [-s for s in line])
        return ahead.bitwise_and_(behind) if erode else ahead.bitwise_or_(behind)

    # -- operators ----------------------------------------------------------------------------------------------

    def _si_or_is(self, words: torch.Tensor, erode: bool) -> torch.Tensor:
        """SI (erode=True) or IS (erode=False).

        Factoring the centre voxel out of each line, an erosion by a line is ``u & (u[p+d] & u[p-d])`` and a
        dilation ``u | (u[p+d] | u[p-d])``; SI ORs the erosions together, IS ANDs the dilations.
        """

        def combine(acc: torch.Tensor | None, term: torch.Tensor, union: bool) -> torch.Tensor:
            if acc is None:
                return term
            return acc.bitwise_or_(term) if union else acc.bitwise_and_(term)

        if len(self.spatial) == 2:
            acc = None
            for line in _LINES_2D:
                acc = combine(acc, self._line_pair(words, line, erode), union=erode)
            assert acc is not None
            return acc.bitwise_and_(words) if erode else acc.bitwise_or_(words)
        out = None
        for axis, second_lines in _PLANES_3D:
            pair = self._line_pair(words, _E3[axis], erode)
            first = pair.bitwise_and_(words) if erode else pair.bitwise_or_(words)
            acc = None
            for line in second_lines:
                acc = combine(acc, self._line_pair(first, line, erode), union=erode)
            assert acc is not None
            group = acc.bitwise_and_(first) if erode else acc.bitwise_or_(first)
            out = combine(out, group, union=erode)
        assert out is not None
        return out

    def sup_inf(self, words: torch.Tensor) -> torch.Tensor:
        """The SI operator: the maximum of the erosions by the lines (2D) or planes (3D)."""
        return self._si_or_is(words, erode=True)

    def inf_sup(self, words: torch.Tensor) -> torch.Tensor:
        """The IS operator: the minimum of the dilations by the lines (2D) or planes (3D)."""
        return self._si_or_is(words, erode=False)

    def curvature(self, words: torch.Tensor, step: int) -> torch.Tensor:
        """The `step`-th smoothing operator of a call: SI∘IS for even steps, IS∘SI for odd ones.

        scikit-image alternates the two through module-level state; LiverVAE starts every call at step 0 (SI∘IS),
        as a fresh scikit-image process does.
        """
        if step % 2 == 0:
            return self.sup_inf(self.inf_sup(words))
        return self.inf_sup(self.sup_inf(words))

    def box(self, words: torch.Tensor, erode: bool) -> torch.Tensor:
        """Binary erosion or dilation by the full 3^n cube (scipy, border value 0), as separable axis passes.

        Separable passes are exact here: a pass along one axis never reads beyond the volume along the others.
        """
        out = words
        nd = len(self.spatial)
        for axis in range(nd):
            line = [0] * nd
            line[axis] = 1
            pair = self._line_pair(out, line, erode)
            out = pair.bitwise_and_(out) if erode else pair.bitwise_or_(out)
        return out

    def contour(self, words: torch.Tensor) -> torch.Tensor:
        """Voxels where ``np.gradient(u)`` is non-zero along some axis (central inside, one-sided on the faces).

        These are the only voxels a morphological snake's image attachment can change.
        """
        nd = len(self.spatial)
        out = torch.zeros_like(words)
        for axis in range(nd):
            if self.spatial[axis] == 1:
                continue  # np.gradient needs two samples; callers refuse such volumes
            unit = [0] * nd
            unit[axis] = 1
            ahead = self.shifted(words, unit)
            behind = self.shifted(words, [-s for s in unit])
            # On the first face np.gradient is u[1] - u[0], on the last u[n-1] - u[n-2], central elsewhere.
            first, last = self._face_masks(axis)
            central = (ahead ^ behind) & ~(first | last)
            out |= central | ((ahead ^ words) & first) | ((words ^ behind) & last)
        return out

    # -- voxel access -------------------------------------------------------------------------------------------

    def counts(self, words: torch.Tensor) -> torch.Tensor:
        """The number of set voxels of each batch item (int64)."""
        x = words
        x = x - (torch.bitwise_right_shift(x, 1) & _as_int64(0x5555555555555555))
        x = (x & _as_int64(0x3333333333333333)) + (torch.bitwise_right_shift(x, 2) & _as_int64(0x3333333333333333))
        x = (x + torch.bitwise_right_shift(x, 4)) & _as_int64(0x0F0F0F0F0F0F0F0F)
        per_word = torch.bitwise_right_shift(x * _ONES, 56) & 0xFF
        return per_word.view(self.shape[0], -1).sum(dim=1)

    def voxels(self, words: torch.Tensor) -> torch.Tensor:
        """Flat indices, into the unpacked (B, *spatial) mask, of the set voxels (ascending)."""
        index = words.nonzero().squeeze(1)
        bits = torch.bitwise_right_shift(words[index].unsqueeze(1), torch.arange(_WORD, device=words.device)) & 1
        word, bit = bits.nonzero(as_tuple=True)
        word = index[word]
        row, column = word // self.words_per_row, word % self.words_per_row
        return row * self.width + column * _WORD + bit

    def _locate(self, voxels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        row, x = voxels // self.width, voxels % self.width
        return row * self.words_per_row + x // _WORD, x % _WORD

    def values(self, words: torch.Tensor, voxels: torch.Tensor) -> torch.Tensor:
        """The bool value of each flat voxel index."""
        word, bit = self._locate(voxels)
        return (torch.bitwise_right_shift(words[word], bit) & 1).bool()

    def assign(self, words: torch.Tensor, voxels: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Set distinct flat voxels to bool `values` in place; returns `words`."""
        word, bit = self._locate(voxels)
        current = (torch.bitwise_right_shift(words[word], bit) & 1).bool()
        change = current != values
        word, bit, values = word[change], bit[change], values[change]
        # Distinct bits of a word never carry, so adding +-2^bit sets or clears each one.
        delta = torch.bitwise_left_shift(torch.ones_like(bit), bit)
        delta = torch.where(values, delta, -delta)
        return words.index_add_(0, word, delta)
