"""Dataset-level checks: is this a CT in Hounsfield units, and is this a valid 0/1/2 label map on its grid."""

from __future__ import annotations

import numpy as np

from livervae.errors import InputError, NotCTError
from livervae.io.volume import Volume, describe_grid_difference, require_3d, require_finite
from livervae.labels import LABEL_NAMES, LIVER, VALID_LABELS

# A CT in HU has air (about -1000) or at least fat (about -100) somewhere in the field of view; data whose
# minimum stays above this is MR, a normalised image, or raw stored values without the rescale applied.
MIN_HU_CEILING = -200.0


def check_ct_image(image: Volume) -> None:
    """Refuse images that are not 3D, hold NaN, or do not look like CT in Hounsfield units."""
    require_3d(image.array, image.source)
    require_finite(image.array, image.source)
    lowest = float(image.array.min())
    if lowest > MIN_HU_CEILING:
        raise NotCTError(
            image.source,
            f"does not look like a CT in Hounsfield units (lowest value {lowest:g}, expected air near -1000)",
        )


def check_label_map(label: Volume, image: Volume, require_liver: bool = True) -> np.ndarray:
    """Validate a label map against its image and return it as uint8.

    Refuses: a grid different from the image's, non-integer or unknown values (anything but 0, 1, 2),
    and, when `require_liver`, a map without any liver (labels 1 or 2).
    """
    require_3d(label.array, label.source)
    require_finite(label.array, label.source)
    if not image.same_grid(label):
        raise InputError(
            label.source, f"label grid does not match image {image.source}: {describe_grid_difference(image, label)}"
        )
    values = np.unique(label.array)
    if not np.all(np.mod(values, 1) == 0):
        raise InputError(label.source, "label map holds non-integer values")
    unknown = sorted(int(v) for v in values if int(v) not in VALID_LABELS)
    if unknown:
        expected = ", ".join(f"{k} {v}" for k, v in LABEL_NAMES.items())
        raise InputError(label.source, f"label values {unknown} outside {expected}")
    as_uint8 = label.array.astype(np.uint8, copy=False)
    if require_liver and not np.any(as_uint8 >= LIVER):
        raise InputError(label.source, "empty liver: the label map has no liver or tumour voxels")
    return as_uint8
