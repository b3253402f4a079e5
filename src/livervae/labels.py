"""The label convention shared by every dataset, bundle and report: 0 background, 1 liver, 2 tumour."""

import numpy as np

BACKGROUND = 0
LIVER = 1
TUMOR = 2

LABEL_NAMES: dict[int, str] = {BACKGROUND: "background", LIVER: "liver", TUMOR: "tumor"}
VALID_LABELS = frozenset(LABEL_NAMES)

# Lesions are 26-connected components (faces, edges and corners touch), as in the LiTS lesion metrics.
LESION_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)


def current_key(key: str) -> str:
    """A metric, setting or weight key in today's spelling: LiverVAE before 0.2 wrote "tumour" (e.g.
    `tumour_dice_mean`, `tumour_net.*`); identifiers and keys now say "tumor", as MONAI and the model zoo do."""
    return key.replace("tumour", "tumor").replace("Tumour", "Tumor")
