"""The patch VAE's training and validation batches: patches stacked once, served and augmented a batch at a time.

Per-patch MONAI transforms (two `RandFlipd`, a `RandRotate90d`, `PatchTargetsd`) cost about 1 ms of Python per
16 x 16 patch on the CPU, three times the network step itself, so with them the loader, not the model, set the
training time (26 s of a 34 s pre-training epoch over 23,000 patches, 2 cores). Here the patches are stacked into
tensors once per fold and each batch is cut, augmented and given its targets with a handful of tensor operations:

- augmentation: each patch gets one of the eight symmetries of the square (rotation by 0/90/180/270 degrees, then
  optionally a mirror), drawn uniformly from torch's global generator (which `monai.utils.set_determinism`
  seeds), the same distribution the two random flips and the random 90-degree rotation give;
- targets, after augmentation so they follow it: "label" (tumour patch when at least `tumor_threshold` of the
  pixels are tumour, compared in pixels as in `livervae.data.patches.grid_patches`), "coords" (tumour centre,
  `livervae.transforms.tumor_centres`) and "has_tumor".

Use `patch_batch_loader`, which asks the dataset for whole batches of indices (`dataset[[i, j, ...]]`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from livervae.data.patches import TUMOR_THRESHOLD
from livervae.errors import InputError
from livervae.transforms.patch_targets import tumor_centres

SYMMETRIES = 8  # the dihedral group of the square


def tumor_labels(masks: torch.Tensor, tumor_threshold: float = TUMOR_THRESHOLD) -> torch.Tensor:
    """(B,) long: 1 where at least `tumor_threshold` of a (B, 1, p, p) mask's pixels are tumour."""
    area = float(masks.shape[-1] * masks.shape[-2])
    return (masks.float().sum(dim=(1, 2, 3)) >= float(tumor_threshold) * area - 1e-6).long()


def apply_symmetries(batch: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
    """Apply to each (C, p, p) item of `batch` its symmetry `ops[i]` in 0..7: `ops % 4` quarter turns, then a mirror
    of the columns when `ops >= 4`."""
    out = torch.empty_like(batch)
    for op in torch.unique(ops).tolist():
        chosen = ops == op
        moved = torch.rot90(batch[chosen], k=op % 4, dims=(-2, -1))
        out[chosen] = torch.flip(moved, dims=(-1,)) if op >= 4 else moved
    return out


class PatchBatchDataset(Dataset):
    """Patches (dicts from `livervae.data.patches.extract_patches`) as stacked tensors, indexed a batch at a time.

    Patches repeated by patient balancing share their tensors; they are stored once and indexed.

    Args:
        patches: the fold's patches ("image" (C, p, p), "mask" (1, p, p)).
        tumor_threshold: fraction of tumour pixels that makes a tumour patch.
        augment: draw a random symmetry per patch (training); False serves them as they are (validation).

    Raises:
        InputError: no patches, or patches of different shapes.
    """

    def __init__(
        self, patches: Sequence[dict[str, Any]], tumor_threshold: float = TUMOR_THRESHOLD, augment: bool = True
    ) -> None:
        if not patches:
            raise InputError(None, "no patches to train or validate on")
        unique: dict[int, int] = {}
        images, masks, index = [], [], []
        for patch in patches:
            key = id(patch["image"])
            if key not in unique:
                unique[key] = len(images)
                images.append(torch.as_tensor(patch["image"]).float())
                masks.append(torch.as_tensor(patch["mask"]) > 0.5)
            index.append(unique[key])
        shapes = {tuple(i.shape) for i in images} | {(images[0].shape[0], *m.shape[1:]) for m in masks}
        if len(shapes) != 1:
            raise InputError(None, f"patches of different shapes: {sorted(shapes)}")
        self.images = torch.stack(images)
        self.masks = torch.stack(masks)
        self.index = torch.as_tensor(index, dtype=torch.long)
        self.tumor_threshold = float(tumor_threshold)
        self.augment = bool(augment)

    def __len__(self) -> int:
        return int(self.index.numel())

    def __getitem__(self, indices: int | Sequence[int] | torch.Tensor) -> dict[str, torch.Tensor]:
        """One batch: "image" (B, C, p, p) float, "mask" (B, 1, p, p) float, "label" (B,) long, "coords" (B, 2),
        "has_tumor" (B,) float. A single integer index gives a batch of one."""
        rows = self.index[torch.as_tensor(indices, dtype=torch.long).reshape(-1)]
        image, mask = self.images[rows], self.masks[rows].float()
        if self.augment:
            ops = torch.randint(0, SYMMETRIES, (rows.numel(),))
            image, mask = apply_symmetries(image, ops), apply_symmetries(mask, ops)
        coords, present = tumor_centres(mask)
        return {
            "image": image,
            "mask": mask,
            "label": tumor_labels(mask, self.tumor_threshold),
            "coords": coords,
            "has_tumor": present.float(),
        }


def patch_batch_loader(dataset: PatchBatchDataset, batch_size: int, shuffle: bool = True) -> DataLoader:
    """A DataLoader that fetches whole batches from `dataset` (shuffled by torch's global generator, last batch
    kept), in the main process: a batch costs a few tensor operations, less than a worker process would."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(None, f"batch_size must be a positive integer, got {batch_size!r}")
    order = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
    return DataLoader(dataset, sampler=BatchSampler(order, batch_size, drop_last=False), batch_size=None)
