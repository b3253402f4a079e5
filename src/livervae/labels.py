"""The label convention shared by every dataset, bundle and report: 0 background, 1 liver, 2 tumour."""

BACKGROUND = 0
LIVER = 1
TUMOR = 2

LABEL_NAMES: dict[int, str] = {BACKGROUND: "background", LIVER: "liver", TUMOR: "tumor"}
VALID_LABELS = frozenset(LABEL_NAMES)
