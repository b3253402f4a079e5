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
   (t = 0 outside the crop). With `tumor_gate_mm` set, t is also 0 farther than that from the stage-1 liver
   (tumour lies in the liver by definition; the crop's margin holds heart, stomach and kidney, where the tumour
   model's false positives went). The gate's margin keeps a tumour that stage 1 left partly outside its mask;
   post-processing then keeps the largest liver-plus-tumour component.

Both stage networks are submodules, so one state dict (`liver_net.*`, `tumor_net.*`) holds all weights.

The module only ever segments: in `train()` mode the stages still run as segmenters and only their dropout
layers become active (Monte Carlo dropout). MONAI Label's epistemic scoring builds the network with
`dropout=p` and calls it in train mode to sample predictions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

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
        flips: test-time augmentation: sets of spatial axes (0, 1, 2) to flip; each stage also segments the
            input flipped along each set (flipped back) and the stage probability is the mean. () = one pass.
        hu_shifts: test-time augmentation: HU offsets added before windowing, one more pass each (the stages
            were trained with intensity shifts, so these stay in distribution where flips may not).
        mc_samples: stochastic passes per augmentation (Monte Carlo dropout; they differ only in `train()` mode
            with dropout on).
        liver_temperature: temperature of the liver probability, P = sigmoid(logit(p) / T) on the stage's mean
            probability p; 1 keeps the probabilities as trained.
        tumor_temperature: the same for the tumour stage.
        tumor_gate_mm: tumour probability is set to 0 farther than this (mm, per axis) from the largest component
            of the stage-1 liver mask; None leaves it as the tumour model gives it inside the crop.
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
        flips: Sequence[Sequence[int]] = (),
        hu_shifts: Sequence[float] = (),
        mc_samples: int = 1,
        liver_temperature: float = 1.0,
        tumor_temperature: float = 1.0,
        tumor_gate_mm: float | None = None,
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
        self.flips = tuple(tuple(int(a) for a in axes) for axes in flips)
        if any(a not in (0, 1, 2) for axes in self.flips for a in axes):
            raise ValueError(f"flip axes must be spatial axes 0, 1 or 2, got {flips}")
        if int(mc_samples) < 1:
            raise ValueError(f"mc_samples must be at least 1, got {mc_samples}")
        self.hu_shifts = tuple(float(v) for v in hu_shifts)
        self.mc_samples = int(mc_samples)
        if liver_temperature <= 0 or tumor_temperature <= 0:
            raise ValueError("temperatures must be positive")
        self.liver_temperature = float(liver_temperature)
        self.tumor_temperature = float(tumor_temperature)
        if tumor_gate_mm is not None and tumor_gate_mm < 0:
            raise ValueError(f"tumor_gate_mm must be at least 0, got {tumor_gate_mm}")
        self.tumor_gate_mm = None if tumor_gate_mm is None else float(tumor_gate_mm)
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

    def passes(self) -> list[tuple[tuple[int, ...], float]]:
        """The test-time passes as (flip axes, HU shift): identity first, then each flip, then each shift."""
        return [((), 0.0), *[(axes, 0.0) for axes in self.flips], *[((), shift) for shift in self.hu_shifts]]

    def _foreground_samples(
        self, hu: torch.Tensor, net: nn.Module, roi: tuple[int, ...], hu_window: tuple[float, float]
    ) -> torch.Tensor:
        """Foreground probability (S, 1, *spatial) of each pass over a (1, 1, *spatial) HU input, `mc_samples`
        each."""
        samples = []
        for axes, shift in self.passes():
            dims = [a + 2 for a in axes]
            x = window(hu + shift if shift else hu.clone(), *hu_window)
            x = x.flip(dims) if dims else x
            for _ in range(self.mc_samples):
                logits = self._sliding(x, net, roi)
                logits = logits.flip(dims) if dims else logits
                samples.append(torch.softmax(logits.float(), dim=1)[:, 1:2])
        return torch.cat(samples, dim=0)

    def liver_input(self, image: torch.Tensor) -> torch.Tensor:
        """Stage 1's input for a (1, 1, *spatial) HU image: resampled to the liver spacing, then windowed.

        The same `Spacing` (voxel i at input index i·c/s, same first voxel, border padding) and the same order
        (resample HU, then clip) as the liver model's training transforms, so it sees the grid it learnt on.
        """
        return window(self.liver_hu(image), *self.liver_window)

    def liver_hu(self, image: torch.Tensor) -> torch.Tensor:
        """A (1, 1, *spatial) HU image resampled to the liver spacing (not yet windowed)."""
        fine = MetaTensor(image[0].float(), affine=_grid_affine(self.input_spacing))
        return Spacing(pixdim=self.liver_spacing.tolist(), mode="bilinear")(fine).as_tensor()[None]

    def liver_probability(self, image: torch.Tensor) -> torch.Tensor:
        """Stage 1: liver probability (1, 1, *spatial) on the input grid of a (1, 1, *spatial) HU image."""
        return temper(self.liver_samples(image).mean(0, keepdim=True), self.liver_temperature)

    def liver_samples(self, image: torch.Tensor) -> torch.Tensor:
        """Stage 1's per-pass liver probabilities (S, 1, *spatial) on the input grid, before the temperature."""
        samples = self._foreground_samples(self.liver_hu(image), self.liver_net, self.liver_roi, self.liver_window)
        probability = MetaTensor(samples[:, 0], affine=_grid_affine(self.liver_spacing))
        back = SpatialResample(mode="bilinear", padding_mode="border")(
            probability, dst_affine=_grid_affine(self.input_spacing), spatial_size=tuple(image.shape[2:])
        )
        return back.as_tensor()[:, None].clamp_(0.0, 1.0)

    def liver_reconstruction_loss(self, image: torch.Tensor, liver: torch.Tensor | None = None) -> float:
        """Stage 1's VAE loss on its training-size window around the liver: an out-of-distribution signal.

        Args:
            image: (1, 1, *spatial) HU image on the input grid.
            liver: (1, 1, *spatial) liver probability on the input grid; the window is centred on its
                probability-weighted centre (the image centre when it is empty or not given).
        """
        coarse = self.liver_input(image)[0]
        shape = np.asarray(coarse.shape[1:])
        centre = (shape - 1) / 2.0
        if liver is not None and float(liver.sum()) > 0:
            grids = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) for n in liver.shape[2:]], indexing="ij")
            weights = liver[0, 0].double()
            fine = np.array([float((g * weights).sum() / weights.sum()) for g in grids])
            centre = fine * self.input_spacing / self.liver_spacing
        size = np.asarray(self.liver_roi)
        start = np.round(centre - (size - 1) / 2.0).astype(int)
        window_ = torch.zeros((1, 1, *self.liver_roi), dtype=coarse.dtype, device=coarse.device)
        src = [slice(max(a, 0), min(a + n, m)) for a, n, m in zip(start, size, shape)]
        dst = [slice(s.start - a, s.stop - a) for s, a in zip(src, start)]
        window_[(0, 0, *dst)] = coarse[(0, *src)]
        return float(self.liver_net.reconstruction_loss(window_)[0])

    def liver_box(self, core: torch.Tensor) -> tuple[slice, ...] | None:
        """Crop (with margin) around the liver's largest component, a (1, *spatial) mask; None if it is empty."""
        if not bool(core.any()):
            return None
        start, end = liver_crop_box(core, self.input_spacing, self.margin_mm)
        return tuple(slice(int(a), int(b)) for a, b in zip(start, end))

    def tumour_gate(self, core: torch.Tensor) -> torch.Tensor:
        """Where tumour may be: the liver's largest component, a (1, *spatial) mask, grown by `tumor_gate_mm`.

        The growth is a box (max-pool) of the margin's voxel count per axis, so anisotropic grids keep the margin
        in millimetres. Returns a (1, 1, *spatial) float mask.
        """
        radius = [int(np.floor(self.tumor_gate_mm / s)) for s in self.input_spacing]
        kernel = [2 * r + 1 for r in radius]
        return nn.functional.max_pool3d(core.float()[None], kernel_size=kernel, stride=1, padding=radius)

    def stage_probabilities(self, image: torch.Tensor) -> "StageProbabilities":
        """Both stages' probabilities on the input grid of one (1, 1, *spatial) HU image, with every pass."""
        liver_passes = self.liver_samples(image)
        liver = temper(liver_passes.mean(0, keepdim=True), self.liver_temperature)
        tumour = torch.zeros_like(liver)
        # One (empty) tumour pass per liver pass, also when there is no liver to crop: callers pair them up.
        tumour_passes = torch.zeros((liver_passes.shape[0], *liver.shape[1:]), dtype=liver.dtype, device=liver.device)
        # One connected-component pass serves both the crop and the gate.
        core = get_largest_connected_component_mask(liver[0] > 0.5)
        box = self.liver_box(core)
        if box is None:
            logger.warning("stage 1 found no liver; the tumour model was not run")
        else:
            region = (slice(None), slice(None), *box)
            crop = image[region].float()
            passes = self._foreground_samples(crop, self.tumor_net, self.tumor_roi, self.tumor_window)
            tumour_passes = torch.zeros((passes.shape[0], *liver.shape[1:]), dtype=liver.dtype, device=liver.device)
            tumour_passes[region] = passes
            tumour[region] = temper(passes.mean(0, keepdim=True), self.tumor_temperature)
            if self.tumor_gate_mm is not None:
                gate = self.tumour_gate(core)
                tumour *= gate
                tumour_passes *= gate
        return StageProbabilities(liver, tumour, liver_passes, tumour_passes, box)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return (B, 3, *spatial) probabilities of background, liver and tumour for a (B, 1, *spatial) HU CT."""
        return torch.cat([self.stage_probabilities(image).classes() for image in x.split(1, dim=0)], dim=0)


def temper(probability: torch.Tensor, temperature: float, eps: float = 1e-6) -> torch.Tensor:
    """Temperature-scale a two-class softmax probability: sigmoid(logit(p) / T), exact for p = softmax(z)[1]."""
    if temperature == 1.0:
        return probability
    p = probability.clamp(eps, 1.0 - eps)
    return torch.sigmoid(torch.logit(p) / temperature)


def compose_classes(liver: torch.Tensor, tumour: torch.Tensor) -> torch.Tensor:
    """(B, 3, ...) background, liver, tumour from the stage probabilities: t, (1 - t) l, (1 - t)(1 - l)."""
    return torch.cat([(1 - tumour) * (1 - liver), (1 - tumour) * liver, tumour], dim=1)


class StageProbabilities(NamedTuple):
    """What both stages give for one image on its input grid.

    Attributes:
        liver: (1, 1, *spatial) liver probability (mean over passes, temperature applied).
        tumour: (1, 1, *spatial) tumour probability (0 outside the liver crop).
        liver_passes: (S, 1, *spatial) each pass's liver probability (flips, MC samples), before the temperature.
        tumour_passes: (S, 1, *spatial) the same for the tumour stage (0 outside the crop).
        box: the liver crop (slices on the input grid), None when stage 1 found no liver.
    """

    liver: torch.Tensor
    tumour: torch.Tensor
    liver_passes: torch.Tensor
    tumour_passes: torch.Tensor
    box: tuple[slice, ...] | None

    def classes(self) -> torch.Tensor:
        """(1, 3, *spatial) probabilities of background, liver and tumour."""
        return compose_classes(self.liver, self.tumour)
