"""Tissue classes of the label-map generator and the HU range of each per contrast phase.

The generator works on a tissue map: one uint8 code per voxel, from a real label map (TotalSegmentator's 117
structures grouped into tissues) plus what the label maps lack (fat, skin, abdominal wall, table, bowel gas and
oral contrast, hepatic veins, tumours). Each case draws one contrast phase and, SynthSeg-style, one mean HU per
tissue uniformly within that phase's range, so the model never sees a fixed contrast; the ranges follow published
attenuation values of abdominal CT (non-contrast, late arterial, portal-venous, delayed), wide on purpose.
"""

from __future__ import annotations

from enum import IntEnum

PHASES = ("non_contrast", "arterial", "portal_venous", "delayed")


class Tissue(IntEnum):
    """Codes of the tissue map (uint8)."""

    AIR = 0
    FAT = 1
    SKIN = 2
    MUSCLE = 3
    LIVER = 4
    SPLEEN = 5
    KIDNEY = 6
    CYST = 7
    STOMACH = 8
    GALLBLADDER = 9
    PANCREAS = 10
    BOWEL = 11
    ARTERY = 12
    VEIN = 13
    PORTAL_VEIN = 14
    HEART = 15
    LUNG = 16
    BONE = 17
    CARTILAGE = 18
    SPINAL_CORD = 19
    BLADDER = 20
    SOFT_TISSUE = 21
    AIRWAY = 22
    BRAIN = 23
    HEPATIC_VEIN = 24
    TUMOR = 25
    TABLE = 26
    GAS = 27
    ORAL_CONTRAST = 28


TISSUE_COUNT = len(Tissue)

# Tissues that are liver in the label map (intrahepatic vessels count as liver, as in LiTS and 3D-IRCADb).
LIVER_TISSUES = (Tissue.LIVER, Tissue.HEPATIC_VEIN, Tissue.TUMOR)

# TotalSegmentator v2 structure name (or prefix ending in "_") -> tissue.
STRUCTURE_TISSUES: dict[str, Tissue] = {
    "liver": Tissue.LIVER,
    "spleen": Tissue.SPLEEN,
    "kidney_left": Tissue.KIDNEY,
    "kidney_right": Tissue.KIDNEY,
    "kidney_cyst_": Tissue.CYST,
    "stomach": Tissue.STOMACH,
    "gallbladder": Tissue.GALLBLADDER,
    "pancreas": Tissue.PANCREAS,
    "duodenum": Tissue.BOWEL,
    "small_bowel": Tissue.BOWEL,
    "colon": Tissue.BOWEL,
    "esophagus": Tissue.SOFT_TISSUE,
    "adrenal_gland_": Tissue.SOFT_TISSUE,
    "prostate": Tissue.SOFT_TISSUE,
    "thyroid_gland": Tissue.SOFT_TISSUE,
    "urinary_bladder": Tissue.BLADDER,
    "aorta": Tissue.ARTERY,
    "iliac_artery_": Tissue.ARTERY,
    "brachiocephalic_trunk": Tissue.ARTERY,
    "subclavian_artery_": Tissue.ARTERY,
    "common_carotid_artery_": Tissue.ARTERY,
    "inferior_vena_cava": Tissue.VEIN,
    "superior_vena_cava": Tissue.VEIN,
    "iliac_vena_": Tissue.VEIN,
    "brachiocephalic_vein_": Tissue.VEIN,
    "pulmonary_vein": Tissue.VEIN,
    "portal_vein_and_splenic_vein": Tissue.PORTAL_VEIN,
    "heart": Tissue.HEART,
    "atrial_appendage_left": Tissue.HEART,
    "lung_": Tissue.LUNG,
    "trachea": Tissue.AIRWAY,
    "vertebrae_": Tissue.BONE,
    "rib_": Tissue.BONE,
    "sacrum": Tissue.BONE,
    "hip_": Tissue.BONE,
    "femur_": Tissue.BONE,
    "humerus_": Tissue.BONE,
    "scapula_": Tissue.BONE,
    "clavicula_": Tissue.BONE,
    "sternum": Tissue.BONE,
    "skull": Tissue.BONE,
    "costal_cartilages": Tissue.CARTILAGE,
    "spinal_cord": Tissue.SPINAL_CORD,
    "autochthon_": Tissue.MUSCLE,
    "iliopsoas_": Tissue.MUSCLE,
    "gluteus_": Tissue.MUSCLE,
    "brain": Tissue.BRAIN,
}

# Mean HU range per tissue: one (low, high) for every phase, or a phase-keyed dict where contrast matters.
_ANY = dict.fromkeys(PHASES)
HU_RANGES: dict[Tissue, dict[str, tuple[float, float]]] = {
    Tissue.AIR: {p: (-1010.0, -980.0) for p in _ANY},
    Tissue.FAT: {p: (-125.0, -75.0) for p in _ANY},
    Tissue.SKIN: {p: (0.0, 50.0) for p in _ANY},
    Tissue.MUSCLE: {
        "non_contrast": (35.0, 60.0),
        "arterial": (40.0, 65.0),
        "portal_venous": (45.0, 75.0),
        "delayed": (45.0, 70.0),
    },
    Tissue.LIVER: {
        "non_contrast": (40.0, 70.0),
        "arterial": (55.0, 95.0),
        "portal_venous": (85.0, 150.0),
        "delayed": (75.0, 115.0),
    },
    Tissue.SPLEEN: {
        "non_contrast": (38.0, 55.0),
        "arterial": (80.0, 150.0),
        "portal_venous": (95.0, 150.0),
        "delayed": (80.0, 115.0),
    },
    Tissue.KIDNEY: {
        "non_contrast": (25.0, 45.0),
        "arterial": (130.0, 220.0),
        "portal_venous": (140.0, 220.0),
        "delayed": (110.0, 190.0),
    },
    Tissue.CYST: {p: (-5.0, 20.0) for p in _ANY},
    Tissue.STOMACH: {p: (5.0, 45.0) for p in _ANY},
    Tissue.GALLBLADDER: {p: (-5.0, 30.0) for p in _ANY},
    Tissue.PANCREAS: {
        "non_contrast": (30.0, 50.0),
        "arterial": (90.0, 150.0),
        "portal_venous": (75.0, 125.0),
        "delayed": (55.0, 95.0),
    },
    Tissue.BOWEL: {p: (10.0, 60.0) for p in _ANY},
    Tissue.ARTERY: {
        "non_contrast": (30.0, 55.0),
        "arterial": (220.0, 450.0),
        "portal_venous": (130.0, 230.0),
        "delayed": (90.0, 150.0),
    },
    Tissue.VEIN: {
        "non_contrast": (30.0, 55.0),
        "arterial": (60.0, 150.0),
        "portal_venous": (120.0, 210.0),
        "delayed": (90.0, 140.0),
    },
    Tissue.PORTAL_VEIN: {
        "non_contrast": (30.0, 55.0),
        "arterial": (80.0, 170.0),
        "portal_venous": (150.0, 250.0),
        "delayed": (100.0, 150.0),
    },
    Tissue.HEART: {
        "non_contrast": (30.0, 55.0),
        "arterial": (180.0, 420.0),
        "portal_venous": (120.0, 220.0),
        "delayed": (90.0, 140.0),
    },
    Tissue.LUNG: {p: (-900.0, -780.0) for p in _ANY},
    Tissue.BONE: {p: (220.0, 650.0) for p in _ANY},
    Tissue.CARTILAGE: {p: (80.0, 220.0) for p in _ANY},
    Tissue.SPINAL_CORD: {p: (20.0, 50.0) for p in _ANY},
    Tissue.BLADDER: {
        "non_contrast": (-5.0, 25.0),
        "arterial": (-5.0, 25.0),
        "portal_venous": (0.0, 40.0),
        "delayed": (0.0, 400.0),
    },
    Tissue.SOFT_TISSUE: {p: (25.0, 80.0) for p in _ANY},
    Tissue.AIRWAY: {p: (-1000.0, -950.0) for p in _ANY},
    Tissue.BRAIN: {p: (25.0, 45.0) for p in _ANY},
    Tissue.HEPATIC_VEIN: {
        "non_contrast": (25.0, 50.0),
        "arterial": (50.0, 110.0),
        "portal_venous": (120.0, 220.0),
        "delayed": (95.0, 150.0),
    },
    Tissue.TUMOR: {p: (0.0, 0.0) for p in _ANY},  # drawn relative to the parenchyma (tumours module)
    Tissue.TABLE: {p: (-350.0, 50.0) for p in _ANY},
    Tissue.GAS: {p: (-1000.0, -900.0) for p in _ANY},
    Tissue.ORAL_CONTRAST: {p: (150.0, 450.0) for p in _ANY},
}

# Fatty and cirrhotic livers: the parenchyma's non-contrast HU drops to this range (fat), or the liver becomes
# nodular and heterogeneous (cirrhosis, texture amplitude below).
FATTY_LIVER_HU_DROP = (15.0, 70.0)
# Texture amplitude (HU, SD of a smooth field) per tissue; tissues not listed are flat before noise.
TEXTURE_HU = {
    Tissue.LIVER: (2.0, 8.0),
    Tissue.SPLEEN: (2.0, 10.0),
    Tissue.LUNG: (15.0, 35.0),
    Tissue.BOWEL: (5.0, 25.0),
    Tissue.BONE: (30.0, 90.0),
    Tissue.MUSCLE: (2.0, 6.0),
    Tissue.FAT: (3.0, 10.0),
    Tissue.KIDNEY: (5.0, 25.0),
}
CIRRHOTIC_TEXTURE_HU = (8.0, 18.0)
