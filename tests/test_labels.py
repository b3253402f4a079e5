import numpy as np
from scipy import ndimage

from livervae.labels import LESION_CONNECTIVITY, current_key


def test_old_keys_read_in_todays_spelling():
    assert current_key("real_ct_3dircadb1_17_tumour_dice_mean") == "real_ct_3dircadb1_17_tumor_dice_mean"
    assert current_key("tumour_net.convInit.conv.weight") == "tumor_net.convInit.conv.weight"
    assert current_key("TwoStageLiverTumourNet") == "TwoStageLiverTumorNet"
    assert current_key("liver_dice_mean") == "liver_dice_mean"


def test_lesions_touching_at_a_corner_are_one():
    mask = np.zeros((3, 3, 3), dtype=bool)
    mask[0, 0, 0] = mask[1, 1, 1] = True
    assert ndimage.label(mask, structure=LESION_CONNECTIVITY)[1] == 1
