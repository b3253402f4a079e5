"""The codes of the internal tissue map, and which codes make up the liver label and each structure mask.

While a case is painted every voxel holds exactly one tissue code (`_T`); the label map (`_LIVER_CODES` become
liver, `_T.TUMOR` tumour), the HU look-up table (`intensities._sample_hu`) and the optional structure masks
(`_MASK_CODES`, returned by `generate_case(..., return_masks=True)`) are all derived from that code map.
"""

from __future__ import annotations


class _T:
    """Tissue codes of the internal tissue map: each voxel belongs to exactly one, painted in priority order."""

    AIR = 0
    SKIN = 1
    FAT = 2
    MUSCLE = 3
    VISCERAL_FAT = 4
    BOWEL = 5
    LUNG = 6
    HEART = 7
    KIDNEY_CORTEX = 8
    KIDNEY_MEDULLA = 9
    KIDNEY_SINUS = 10
    SPLEEN = 11
    STOMACH_WALL = 12
    STOMACH_FLUID = 13
    STOMACH_GAS = 14
    GALLBLADDER = 15
    AORTA = 16
    IVC = 17
    PORTAL_EXTRA = 18
    LIVER = 19
    PORTAL = 20
    HEPATIC = 21
    TUMOR = 22
    BONE_MARROW = 23
    BONE_CORTEX = 24
    DISC = 25
    CANAL = 26
    RIB_MARROW = 27
    RIB_CORTEX = 28
    COUNT = 29


_LIVER_CODES = (_T.LIVER, _T.PORTAL, _T.HEPATIC, _T.TUMOR)


_MASK_CODES: dict[str, tuple[int, ...]] = {
    "liver": _LIVER_CODES,
    "tumor": (_T.TUMOR,),
    "vessels": (_T.PORTAL, _T.HEPATIC),
    "portal_vein_extrahepatic": (_T.PORTAL_EXTRA,),
    "spleen": (_T.SPLEEN,),
    "kidneys": (_T.KIDNEY_CORTEX, _T.KIDNEY_MEDULLA, _T.KIDNEY_SINUS),
    "stomach": (_T.STOMACH_WALL, _T.STOMACH_FLUID, _T.STOMACH_GAS),
    "stomach_gas": (_T.STOMACH_GAS,),
    "gallbladder": (_T.GALLBLADDER,),
    "aorta": (_T.AORTA,),
    "ivc": (_T.IVC,),
    "spine": (_T.BONE_MARROW, _T.BONE_CORTEX, _T.DISC, _T.CANAL),
    "ribs": (_T.RIB_MARROW, _T.RIB_CORTEX),
    "lungs": (_T.LUNG,),
    "heart": (_T.HEART,),
    "muscle": (_T.MUSCLE,),
    "fat": (_T.FAT, _T.VISCERAL_FAT),
}
