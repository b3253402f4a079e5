import numpy as np
import torch
from monai.data import MetaTensor

from livervae.transforms import RemoveSmallTumorsd
from livervae.transforms.postprocess import remove_small_tumors


def _label():
    label = np.zeros((20, 20, 20), np.uint8)
    label[2:18, 2:18, 2:18] = 1
    label[4:8, 4:8, 4:8] = 2  # 64 voxels
    label[12, 12, 12] = 2  # 1 voxel
    return label


def test_small_components_become_liver_not_background():
    out = remove_small_tumors(_label(), min_voxels=8)
    assert int((out == 2).sum()) == 64 and out[12, 12, 12] == 1 and int((out == 0).sum()) == int((_label() == 0).sum())


def test_threshold_is_a_volume_at_the_map_spacing():
    affine = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0]))  # 8 mm3 voxels
    data = {"pred": MetaTensor(torch.from_numpy(_label()[None]).float(), affine=affine)}
    kept = RemoveSmallTumorsd("pred", min_volume_mm3=500.0)(data)["pred"]  # 63 voxels: the 64-voxel one stays
    assert isinstance(kept, MetaTensor) and int((kept == 2).sum()) == 64
    gone = RemoveSmallTumorsd("pred", min_volume_mm3=520.0)(data)["pred"]  # 65 voxels
    assert int((gone == 2).sum()) == 0 and torch.equal(gone.affine, affine.double())
