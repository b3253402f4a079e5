"""Whole-volume inference of the patch models: score every liver patch of every axial slice, stitch maps.

Both inferers take the preprocessed CT (B, 1, H, W, D) and, as the keyword `label` (passed by
`PrepareBatchExtraInput`), its label map (B, 1, H, W, D): 0 background, >= 1 liver, 2 tumour (a plain liver
mask works; tumour values are only used to label the patches for the AUC). The liver decides which patches are
scored (`livervae.data.patches.grid_patches`: the same grid as in training), so the patch VAE and the U-Net
baselines are scored on exactly the same patches.

- `LiverPatchInferer` (patch VAE): per patch, the tumour probability (mean over `n_samples` draws of z), its
  variance (the uncertainty), the predicted tumour centre; returns (B, 2, H, W, D): probability and variance
  maps, each pixel the mean over the patches covering it (0 outside every liver patch).
- `SliceMapInferer` (U-Net baselines): MONAI's `SliceInferer` over the axial slices, softmax tumour
  probability masked to the liver; a patch's score is its mean probability. Returns (B, 1, H, W, D).

After each call `records` holds, per batch item, one dict per scored patch (slice, row, col, score, variance,
label, tumor_fraction and, for the VAE, the centre in voxels of the preprocessed grid), which
`livervae.handlers.PatchReportHandler` turns into AUCs and the coordinates JSON.
"""

from __future__ import annotations

from typing import Any

import torch
from monai.inferers import Inferer, SliceInferer
from monai.utils import convert_to_dst_type

from livervae.data.patches import PatchGrid, grid_patches
from livervae.engines.patch_vae import unwrap
from livervae.labels import LIVER


def stitch_patches(
    values: torch.Tensor, locations: torch.Tensor, shape: tuple[int, int], patch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum `values` (N,) over the pixels of each patch placed at `locations` (N, 2) (row, col) on an (H, W) plane;
    return (sum, count) so that sum / count is the mean over covering patches."""
    total = torch.zeros(shape, dtype=torch.float32)
    count = torch.zeros(shape, dtype=torch.float32)
    for value, (row, col) in zip(values.tolist(), locations.tolist()):
        total[row : row + patch_size, col : col + patch_size] += value
        count[row : row + patch_size, col : col + patch_size] += 1.0
    return total, count


class _SliceGrid:
    """The patch grid over a volume's axial liver slices, and the per-case patch records both inferers keep."""

    def __init__(self, grid: PatchGrid, bright_level: float | None = None) -> None:
        self.grid = grid
        self.bright_level = None if bright_level is None else float(bright_level)
        self.records: list[list[dict[str, Any]]] = []

    def bright_fractions(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor | None:
        """Per liver patch of one (C, H, W) slice (in `grid_patches` order), the fraction of its pixels that are
        liver and at or above `bright_level` in the first channel: enhancing intrahepatic vessels after the liver
        window (None when no level is set). Pixels outside the liver (bone, aorta, contrast-filled bowel) do not
        count: on phantoms every patch so found holds vessel voxels (tests/inferers)."""
        if self.bright_level is None:
            return None
        liver = torch.as_tensor(label)[:1] >= LIVER
        bright = ((torch.as_tensor(image)[:1].float() >= self.bright_level) & liver).float()
        return grid_patches(bright, label, self.grid)["image"].mean(dim=(1, 2, 3))

    @staticmethod
    def _bright(fractions: torch.Tensor | None, i: int) -> dict[str, float]:
        return {} if fractions is None else {"bright_fraction": round(float(fractions[i]), 4)}

    def slices(self, image: torch.Tensor, label: torch.Tensor):
        """Yield (k, grid) for each axial slice of (C, H, W, D) with liver patches."""
        liver = (label[0] >= LIVER).sum(dim=(0, 1))
        for k in torch.nonzero(liver).flatten().tolist():
            patches = grid_patches(image[..., k].cpu(), label[..., k].cpu(), self.grid)
            if patches["label"].numel():
                yield k, patches

    @staticmethod
    def _label(inputs: torch.Tensor, label: torch.Tensor | None) -> torch.Tensor:
        if label is None:
            raise ValueError("patch inference needs the liver label map as the `label` keyword argument")
        if label.shape[0] != inputs.shape[0] or label.shape[2:] != inputs.shape[2:]:
            raise ValueError(f"label {tuple(label.shape)} does not match the image {tuple(inputs.shape)}")
        return torch.as_tensor(label).round()


class LiverPatchInferer(Inferer, _SliceGrid):
    """Patch VAE over every liver patch of a volume: probability and uncertainty maps plus per-patch records.

    Args:
        grid: the patch grid (its patch size is the network's).
        n_samples: draws of z per patch for the probability and its variance.
        batch_size: patches per forward pass.
        bright_level: when set, each record also holds "bright_fraction", the fraction of the patch at or above
            this windowed intensity (bright vessels: the false-positive rate on vessel-only patches is read from it).
    """

    def __init__(
        self,
        grid: PatchGrid = PatchGrid(),
        n_samples: int = 16,
        batch_size: int = 2048,
        bright_level: float | None = None,
    ) -> None:
        Inferer.__init__(self)
        _SliceGrid.__init__(self, grid, bright_level)
        self.n_samples = int(n_samples)
        self.batch_size = int(batch_size)

    def __call__(self, inputs: torch.Tensor, network: Any, *args: Any, label: torch.Tensor | None = None, **kwargs):
        label = self._label(inputs, label)
        net = unwrap(network)
        device = next(net.parameters()).device
        p = self.grid.patch_size
        maps = torch.zeros((inputs.shape[0], 2, *inputs.shape[2:]), dtype=torch.float32)
        self.records = []
        for b in range(inputs.shape[0]):
            records: list[dict[str, Any]] = []
            shape = tuple(inputs.shape[2:4])
            for k, patches in self.slices(torch.as_tensor(inputs[b]).float(), label[b]):
                bright = self.bright_fractions(inputs[b][..., k].cpu(), label[b][..., k].cpu())
                outs = [
                    net.predict(chunk.to(device), self.n_samples) for chunk in patches["image"].split(self.batch_size)
                ]
                prob = torch.cat([o["probability"] for o in outs]).float().cpu()
                var = torch.cat([o["variance"] for o in outs]).float().cpu()
                coords = torch.cat([o["coords"] for o in outs]).float().cpu()
                total_p, count = stitch_patches(prob, patches["location"], shape, p)
                total_v, _ = stitch_patches(var, patches["location"], shape, p)
                covered = count > 0
                maps[b, 0, ..., k][covered] = total_p[covered] / count[covered]
                maps[b, 1, ..., k][covered] = total_v[covered] / count[covered]
                for i, (row, col) in enumerate(patches["location"].tolist()):
                    x, y = coords[i].tolist()
                    records.append(
                        {
                            "slice": k,
                            "row": row,
                            "col": col,
                            "score": float(prob[i]),
                            "variance": float(var[i]),
                            "label": int(patches["label"][i]),
                            "tumor_fraction": float(patches["tumor_fraction"][i]),
                            **self._bright(bright, i),
                            # voxel position of the predicted centre on the preprocessed grid (axes 0, 1, 2)
                            "centre_voxel": [row + y * p - 0.5, col + x * p - 0.5, float(k)],
                        }
                    )
            self.records.append(records)
        # Keep the input's metadata (file name, affine) on the output, as MONAI's own inferers do.
        return convert_to_dst_type(maps, inputs)[0]


class SliceMapInferer(Inferer, _SliceGrid):
    """A 2D segmentation network over the axial slices; tumour probability in the liver plus patch records.

    Args:
        roi_size: the 2D window (the network's training slice size; ResNet-50 encoders need multiples of 32).
        sw_batch_size: windows per forward pass.
        overlap: window overlap.
        grid: the patch grid scored for the AUC.
        tumor_channel: output channel of the tumour class.
        bright_level: as for `LiverPatchInferer`.
    """

    def __init__(
        self,
        roi_size: tuple[int, int] | list[int] = (160, 160),
        sw_batch_size: int = 16,
        overlap: float = 0.25,
        grid: PatchGrid = PatchGrid(),
        tumor_channel: int = 1,
        bright_level: float | None = None,
    ) -> None:
        Inferer.__init__(self)
        _SliceGrid.__init__(self, grid, bright_level)
        self.slice_inferer = SliceInferer(
            roi_size=tuple(roi_size), sw_batch_size=sw_batch_size, overlap=overlap, spatial_dim=2, mode="gaussian"
        )
        self.tumor_channel = int(tumor_channel)

    def __call__(self, inputs: torch.Tensor, network: Any, *args: Any, label: torch.Tensor | None = None, **kwargs):
        label = self._label(inputs, label)
        logits = self.slice_inferer(torch.as_tensor(inputs).float(), network)
        prob = torch.softmax(torch.as_tensor(logits).float(), dim=1)[:, self.tumor_channel : self.tumor_channel + 1]
        prob = prob * (label.to(prob.device) >= LIVER)
        self.records = []
        for b in range(inputs.shape[0]):
            records = []
            for k, patches in self.slices(prob[b].detach().cpu(), label[b]):
                scores = patches["image"].mean(dim=(1, 2, 3))
                bright = self.bright_fractions(torch.as_tensor(inputs[b])[..., k].cpu(), label[b][..., k].cpu())
                for i, (row, col) in enumerate(patches["location"].tolist()):
                    records.append(
                        {
                            "slice": k,
                            "row": row,
                            "col": col,
                            "score": float(scores[i]),
                            "label": int(patches["label"][i]),
                            "tumor_fraction": float(patches["tumor_fraction"][i]),
                            **self._bright(bright, i),
                        }
                    )
            self.records.append(records)
        return convert_to_dst_type(prob, inputs)[0]
