"""The whole two-stage chain as one network: CT in, 3-class probabilities (background, liver, tumour) out.

MONAI Label runs a bundle's `preprocessing`, then `inferer(image, network)` once, then `postprocessing`, so
the liver → crop → tumour cascade must live inside the network. The input is a CT in Hounsfield units on the
tumour model's (fine) grid; the network

1. resamples it to the liver model's (coarse) spacing with MONAI's `Spacing`, then windows it, as the liver
   model's training transforms do (same grid, same order),
2. segments the liver by sliding window and resamples the liver probability back to the fine grid,
3. crops the fine image to the largest liver component's bounding box plus a margin,
4. segments tumour in the crop with the tumour model (its own intensity window; windows are padded with 0 as
   training pads its crops), and
5. pastes the tumour probability back and composes the three classes:
   P(tumour) = t, P(liver) = (1 - t) l, P(background) = (1 - t)(1 - l), with l and t the stage probabilities
   (t = 0 outside the crop). Tumour is therefore never suppressed by an under-segmented liver; post-processing
   keeps the largest liver-plus-tumour component, which removes tumour found outside the liver.

Both stage networks are submodules, so one state dict (`liver_net.*`, `tumor_net.*`) holds all weights.

The module only ever segments: in `train()` mode the stages still run as segmenters and only their dropout
layers become active (Monte Carlo dropout). MONAI Label's epistemic scoring builds the network with
`dropout=p` and calls it in train mode to sample predictions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.inferers import sliding_window_inference
from monai.transforms import Spacing, SpatialResample
from monai.transforms.utils import get_largest_connected_component_mask
from torch import nn

from livervae.labels import current_key
from livervae.transforms.liver_roi import liver_crop_box

logger = logging.getLogger(__name__)


def window(x: torch.Tensor, a_min: float, a_max: float) -> torch.Tensor:
    """Map HU in [a_min, a_max] linearly to [0, 1] and clip, as `ScaleIntensityRanged(..., clip=True)` does."""
    return ((x - a_min) / (a_max - a_min)).clamp_(0.0, 1.0)


def _grid_affine(spacing: np.ndarray) -> torch.Tensor:
    """Affine of a grid with `spacing` and its first voxel at the origin (only relative geometry matters here)."""
    return torch.diag(torch.tensor([*spacing.tolist(), 1.0], dtype=torch.float64))


def _current_keys(module: nn.Module, state_dict: dict, prefix: str, *args: object) -> None:
    for key in [k for k in state_dict if k.startswith(prefix) and current_key(k) != k]:
        state_dict[current_key(key)] = state_dict.pop(key)


class TwoStageLiverTumorNet(nn.Module):
    """Liver model at coarse spacing, then tumour model on the liver crop at fine spacing.

    Args:
        liver_net: stage-1 network, 2 output channels (background, liver), trained on `liver_window` intensities
            at `liver_spacing`.
        tumor_net: stage-2 network, 2 output channels (background, tumour), trained on `tumor_window`
            intensities at `input_spacing` inside liver crops.
        input_spacing: the spacing (mm) of the input, i.e. the tumour model's training spacing.
        liver_spacing: the liver model's training spacing (mm).
        liver_window: HU window (a_min, a_max) of the liver model.
        tumor_window: HU window of the tumour model.
        liver_roi: sliding-window size of the liver model (its training patch size).
        tumor_roi: sliding-window size of the tumour model.
        margin_mm: margin around the liver's bounding box for the crop.
        sw_batch_size: windows per forward pass.
        overlap: sliding-window overlap.
        dropout: dropout probability switched on in both stages (None keeps them as built), for MC dropout.
    """

    def __init__(
        self,
        liver_net: nn.Module,
        tumor_net: nn.Module,
        input_spacing: Sequence[float],
        liver_spacing: Sequence[float],
        liver_window: Sequence[float] = (-200.0, 250.0),
        tumor_window: Sequence[float] = (-100.0, 250.0),
        liver_roi: Sequence[int] = (96, 96, 96),
        tumor_roi: Sequence[int] = (96, 96, 96),
        margin_mm: float = 10.0,
        sw_batch_size: int = 2,
        overlap: float = 0.25,
        dropout: float | None = None,
    ) -> None:
        super().__init__()
        # Weights saved before the "tumor" spelling hold `tumour_net.*`; MONAI's CheckpointLoader loads them too.
        self.register_load_state_dict_pre_hook(_current_keys)
        self.liver_net = liver_net
        self.tumor_net = tumor_net
        if dropout is not None:
            for net in (liver_net, tumor_net):
                if not hasattr(net, "set_dropout"):
                    raise TypeError(f"{type(net).__name__} cannot switch dropout on (needs set_dropout)")
                net.set_dropout(dropout)
        self.input_spacing = np.asarray(input_spacing, dtype=float)
        self.liver_spacing = np.asarray(liver_spacing, dtype=float)
        self.liver_window = tuple(float(v) for v in liver_window)
        self.tumor_window = tuple(float(v) for v in tumor_window)
        self.liver_roi = tuple(int(v) for v in liver_roi)
        self.tumor_roi = tuple(int(v) for v in tumor_roi)
        self.margin_mm = float(margin_mm)
        self.sw_batch_size = int(sw_batch_size)
        self.overlap = float(overlap)
        self.train(self.training)  # the stages segment from the start, even before anyone sets a mode

    def train(self, mode: bool = True) -> "TwoStageLiverTumorNet":
        """Set the mode; the stages stay segmenters (eval) and only their dropout layers follow `mode`."""
        super().train(mode)
        for net in (self.liver_net, self.tumor_net):
            net.eval()
            for module in net.modules():
                if isinstance(module, nn.modules.dropout._DropoutNd):
                    module.train(mode)
        return self

    def _sliding(self, x: torch.Tensor, net: nn.Module, roi: tuple[int, ...]) -> torch.Tensor:
        # Constant 0 padding: training pads its crops with windowed 0 (SpatialPadd) and validates the same way.
        return sliding_window_inference(x, roi, self.sw_batch_size, net, overlap=self.overlap, mode="gaussian")

    def liver_input(self, image: torch.Tensor) -> torch.Tensor:
        """Stage 1's input for a (1, 1, *spatial) HU image: resampled to the liver spacing, then windowed.

        The same `Spacing` (voxel i at input index i·c/s, same first voxel, border padding) and the same order
        (resample HU, then clip) as the liver model's training transforms, so it sees the grid it learnt on.
        """
        fine = MetaTensor(image[0].float(), affine=_grid_affine(self.input_spacing))
        coarse = Spacing(pixdim=self.liver_spacing.tolist(), mode="bilinear")(fine)
        return window(coarse.as_tensor()[None], *self.liver_window)

    def liver_probability(self, image: torch.Tensor) -> torch.Tensor:
        """Stage 1: liver probability (1, 1, *spatial) on the input grid of a (1, 1, *spatial) HU image."""
        logits = self._sliding(self.liver_input(image), self.liver_net, self.liver_roi)
        probability = MetaTensor(torch.softmax(logits.float(), dim=1)[0, 1:2], affine=_grid_affine(self.liver_spacing))
        back = SpatialResample(mode="bilinear", padding_mode="border")(
            probability, dst_affine=_grid_affine(self.input_spacing), spatial_size=tuple(image.shape[2:])
        )
        return back.as_tensor()[None].clamp_(0.0, 1.0)

    def liver_box(self, liver: torch.Tensor) -> tuple[slice, ...] | None:
        """Crop (with margin) around the largest component of a (1, *spatial) liver mask, or None if empty."""
        if not bool(liver.any()):
            return None
        start, end = liver_crop_box(get_largest_connected_component_mask(liver), self.input_spacing, self.margin_mm)
        return tuple(slice(int(a), int(b)) for a, b in zip(start, end))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return (B, 3, *spatial) probabilities of background, liver and tumour for a (B, 1, *spatial) HU CT."""
        outputs = []
        for image in x.split(1, dim=0):
            liver = self.liver_probability(image)
            tumour = torch.zeros_like(liver)
            box = self.liver_box(liver[0] > 0.5)
            if box is None:
                logger.warning("stage 1 found no liver; the tumour model was not run")
            else:
                crop = window(image[(slice(None), slice(None), *box)].float(), *self.tumor_window)
                logits = self._sliding(crop, self.tumor_net, self.tumor_roi)
                tumour[(slice(None), slice(None), *box)] = torch.softmax(logits.float(), dim=1)[:, 1:2]
            outputs.append(torch.cat([(1 - tumour) * (1 - liver), (1 - tumour) * liver, tumour], dim=1))
        return torch.cat(outputs, dim=0)
