"""Refine predicted tumour boundaries with a morphological Chan-Vese contour, inside the liver and near the tumour.

SmoothSegNet-style post-processing: the tumour model's mask initialises a few iterations of morphological Chan-Vese
(`livervae.active_contours.morphological_chan_vese`, voxel-exact with scikit-image), and only a thin band around the
predicted tumour, within the liver, may change. Work is confined to the band's bounding box, so large volumes cost
no more than their tumours.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import MapTransform

from livervae.active_contours.active_contour import morphological_chan_vese
from livervae.labels import LIVER, TUMOR


def _raw(array: Any) -> torch.Tensor:
    """A plain tensor view of a MetaTensor / tensor, or a tensor sharing a numpy array's memory."""
    if isinstance(array, torch.Tensor):
        return array.as_tensor() if hasattr(array, "as_tensor") else array
    return torch.as_tensor(np.asarray(array))


def dilate_box(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Dilate a 2D/3D bool mask by a cube (square) of half-width `radius` voxels (Chebyshev distance)."""
    if radius <= 0:
        return mask.clone()
    pool = F.max_pool3d if mask.ndim == 3 else F.max_pool2d
    grown = pool(mask[None, None].to(torch.float32), kernel_size=2 * radius + 1, stride=1, padding=radius)
    return grown[0, 0] > 0


class ActiveContourd(MapTransform):
    """Refine the tumour (2) of a 0/1/2 label map with morphological Chan-Vese, inside the liver near the tumour.

    The contour starts from the predicted tumour and runs on the image cropped to the bounding box of the band (the
    tumour dilated by `band` voxels). Inside the band and the liver (labels 1 or 2), voxels the contour includes
    become tumour (2) and voxels it excludes become liver (1), so removed tumour stays liver; everything else is
    unchanged. The label keeps its type (MetaTensor with its meta, tensor, or numpy), dtype and device; the image
    is moved to the label's device.

    Args:
        keys: label-map keys, channel-first (1, *spatial).
        image_key: the image (1, *spatial) or (*spatial), any intensity scale.
        num_iter: Chan-Vese iterations.
        smoothing: curvature (SI∘IS / IS∘SI) steps per iteration.
        lambda1: weight of the inside term of Chan-Vese.
        lambda2: weight of the outside term.
        band: half-width in voxels of the cube the tumour is dilated by to get the region allowed to change.
        enabled: False returns the data unchanged (so a bundle config can switch refinement off).
        a_min: optional lower bound the image is clipped to before the contour (an intensity window).
        a_max: optional upper bound.
        allow_missing_keys: don't raise if a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection = "pred",
        image_key: str = "image",
        num_iter: int = 2,
        smoothing: int = 1,
        lambda1: float = 1.0,
        lambda2: float = 1.0,
        band: int = 3,
        enabled: bool = True,
        a_min: float | None = None,
        a_max: float | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if int(band) != band or band < 0:
            raise ValueError(f"band must be a non-negative integer number of voxels, got {band}")
        if a_min is not None and a_max is not None and a_min > a_max:
            raise ValueError(f"a_min ({a_min}) is above a_max ({a_max})")
        self.image_key = image_key
        self.num_iter = int(num_iter)
        self.smoothing = int(smoothing)
        self.lambda1 = lambda1
        self.lambda2 = lambda2
        self.band = int(band)
        self.enabled = bool(enabled)
        self.a_min = a_min
        self.a_max = a_max

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if not self.enabled:
            return d
        for key in self.key_iterator(d):
            d[key] = self.refine(d[key], d[self.image_key])
        return d

    def refine(self, label: Any, image: Any) -> Any:
        """Refine one (1, *spatial) label map with its image; returns a new label of the same type (or `label`).

        Args:
            label: the 0/1/2 label map (MetaTensor, tensor or numpy), one channel.
            image: the matching image, (1, *spatial) or (*spatial).

        Returns:
            The refined label map, or `label` itself when it holds no tumour.
        """
        lab = _raw(label)
        if lab.ndim not in (3, 4) or lab.shape[0] != 1:
            raise ValueError(f"expected a one-channel (1, *spatial) label map, got shape {tuple(lab.shape)}")
        spatial = tuple(lab.shape[1:])
        img = _raw(image).to(lab.device)
        if img.ndim == len(spatial) + 1:
            if img.shape[0] != 1:
                raise ValueError(f"expected a one-channel image, got shape {tuple(img.shape)}")
            img = img[0]
        if tuple(img.shape) != spatial:
            raise ValueError(f"image shape {tuple(img.shape)} does not match the label's {spatial}")
        tumour = lab[0] == TUMOR
        voxels = tumour.nonzero()
        if voxels.numel() == 0:
            return label
        # The band's bounding box: the tumour's box grown by `band`, clipped to the volume.
        lo = (voxels.min(dim=0).values - self.band).clamp(min=0).tolist()
        hi = [min(int(v) + self.band + 1, size) for v, size in zip(voxels.max(dim=0).values.tolist(), spatial)]
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        crop = lab[0][box]
        init = crop == TUMOR
        region = dilate_box(init, self.band) & ((crop == LIVER) | init)
        crop_image = img[box]
        if self.a_min is not None or self.a_max is not None:
            crop_image = crop_image.clamp(min=self.a_min, max=self.a_max)
        inside = morphological_chan_vese(
            crop_image, self.num_iter, init, self.smoothing, self.lambda1, self.lambda2, spatial_dims=len(spatial)
        ).bool()
        refined = torch.where(inside, TUMOR, LIVER).to(lab.dtype)

        out = label.clone() if isinstance(label, torch.Tensor) else np.array(label, copy=True)
        target = _raw(out)[0][box]  # shares memory with `out`
        target[region] = refined[region]
        return out
