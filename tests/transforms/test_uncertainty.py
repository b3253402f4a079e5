"""The bundle's uncertainty transforms give what `livervae infer --uncertainty` computes, on the source grid."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Orientationd, Spacingd

from livervae.networks.two_stage import compose_classes
from livervae.transforms import SourceGridProbabilityd, StageProbabilitiesd, UncertaintyMapsd
from livervae.transforms.source_grid import probabilities_to_source_grid
from livervae.uncertainty import UncertaintySettings, calibrated_maps


def _data(tmp_path):
    affine = np.array([[-1.3, 0, 0, 5.0], [0, -1.3, 0, 7.0], [0, 0, 2.5, -3.0], [0, 0, 0, 1]])
    array = np.random.default_rng(0).normal(size=(21, 19, 11)).astype(np.float32)
    nib.save(nib.Nifti1Image(array, affine), str(tmp_path / "ct.nii.gz"))
    preprocessing = Compose(
        [
            LoadImaged(keys="image", image_only=True),
            EnsureChannelFirstd(keys="image"),
            Orientationd(keys="image", axcodes="RAS"),
            Spacingd(keys="image", pixdim=(1.5, 1.5, 1.5), mode="bilinear"),
        ]
    )
    data = preprocessing({"image": str(tmp_path / "ct.nii.gz")})
    stages = torch.from_numpy(np.random.default_rng(1).random((2, *data["image"].shape[1:])).astype(np.float32))
    classes = compose_classes(stages[0][None, None], stages[1][None, None])[0]
    data["uncertainty"] = MetaTensor(classes, affine=data["image"].affine, meta=dict(data["image"].meta))
    return data, preprocessing, stages, affine


def test_bundle_transforms_resample_the_stages_then_make_calibrated_maps_on_the_source_grid(tmp_path):
    data, preprocessing, stages, affine = _data(tmp_path)
    settings = UncertaintySettings(liver_temperature=0.5, tumor_temperature=1.5)
    chain = Compose(
        [
            StageProbabilitiesd("uncertainty"),
            SourceGridProbabilityd("uncertainty", transform=preprocessing),
            UncertaintyMapsd("uncertainty", settings=settings),
        ]
    )
    maps = chain(dict(data))["uncertainty"]
    on_source = probabilities_to_source_grid(stages, data["image"], preprocessing)
    assert tuple(maps.shape) == (3, 21, 19, 11)
    np.testing.assert_allclose(maps.numpy(), calibrated_maps(on_source, settings), atol=1e-5)
    np.testing.assert_allclose(np.asarray(maps.affine), affine)


def test_transforms_refuse_maps_with_the_wrong_channel_count(tmp_path):
    data, _, stages, _ = _data(tmp_path)
    with pytest.raises(ValueError, match="3 class probabilities"):
        StageProbabilitiesd("uncertainty")({"uncertainty": stages})
    with pytest.raises(ValueError, match="2 stage probabilities"):
        UncertaintyMapsd("uncertainty")({"uncertainty": data["uncertainty"]})
