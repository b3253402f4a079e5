import pytest
import torch
from monai.data import MetaTensor

from livervae.data.patches import PatchGrid
from livervae.inferers import LiverPatchInferer, SliceMapInferer, stitch_patches
from livervae.networks import PatchVAE


class MeanIntensityVAE(PatchVAE):
    """A stand-in whose 'probability' is the patch's mean intensity: known answers for the stitching."""

    def predict(self, x, n_samples=16):
        mean = x.mean(dim=(1, 2, 3))
        return {
            "probability": mean,
            "variance": mean / 10,
            "mask": x,
            "coords": torch.tensor([[0.75, 0.25]]).expand(x.shape[0], 2),
        }


def test_stitching_averages_the_covering_patches():
    total, count = stitch_patches(torch.tensor([1.0, 3.0]), torch.tensor([[0, 0], [0, 2]]), (4, 6), 4)
    mean = total / count.clamp(min=1)
    assert mean[0].tolist() == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0] and count[:, 2:4].eq(2).all() and count[:, 4:].eq(1).all()


def _volume():
    image = torch.zeros(1, 1, 16, 24, 3)
    label = torch.zeros(1, 1, 16, 24, 3)
    label[0, 0, :, :16, 1] = 1  # slice 1: liver in columns 0-15
    label[0, 0, :8, :8, 1] = 2  # one tumour patch
    image[0, 0, :8, 8:16, 1] = 0.5  # a bright patch
    affine = torch.diag(torch.tensor([2.0, 2.0, 5.0, 1.0]))
    affine[:3, 3] = torch.tensor([10.0, 20.0, 30.0])
    return MetaTensor(image, affine=affine), label


def test_patch_vae_maps_land_on_their_patches_and_records_carry_the_centre():
    image, label = _volume()
    inferer = LiverPatchInferer(PatchGrid(8, 8, min_liver_fraction=0.5))
    maps = inferer(image, MeanIntensityVAE(patch_size=8), label=label)
    assert maps.shape == (1, 2, 16, 24, 3) and isinstance(maps, MetaTensor)
    assert torch.equal(maps.affine, image.affine)  # metadata kept for inversion and saving
    assert float(maps[0, 0, 0, 8, 1]) == pytest.approx(0.5) and float(maps[0, 1, 0, 8, 1]) == pytest.approx(0.05)
    assert not maps[0, :, :, 16:, 1].any() and not maps[0, :, :, :, 0].any()  # outside liver patches: 0
    records = inferer.records[0]
    assert [(r["row"], r["col"], r["label"]) for r in records] == [(0, 0, 1), (0, 8, 0), (8, 0, 0), (8, 8, 0)]
    # predicted centre (x 0.75, y 0.25) of the patch at (0, 8): row 0 + 0.25 * 8 - 0.5, column 8 + 0.75 * 8 - 0.5
    assert records[1]["centre_voxel"] == [1.5, 13.5, 1.0] and records[1]["score"] == pytest.approx(0.5)


def test_slice_map_inferer_scores_the_same_patches_by_mean_probability():
    image, label = _volume()

    def net(x):  # logits favouring tumour where the image is bright
        return torch.cat([torch.zeros_like(x), 20 * x - 5], dim=1)

    inferer = SliceMapInferer(roi_size=(16, 16), grid=PatchGrid(8, 8, min_liver_fraction=0.5))
    prob = inferer(image, net, label=label)
    assert prob.shape == (1, 1, 16, 24, 3) and not prob[0, 0, :, 16:, :].any()  # masked to the liver
    records = inferer.records[0]
    assert [(r["row"], r["col"]) for r in records] == [(0, 0), (0, 8), (8, 0), (8, 8)]
    assert records[1]["score"] > 0.99 and records[0]["score"] < 0.01


def test_inferers_need_a_matching_label():
    image, label = _volume()
    with pytest.raises(ValueError, match="needs the liver label map"):
        LiverPatchInferer(PatchGrid(8, 8))(image, MeanIntensityVAE(patch_size=8))
    with pytest.raises(ValueError, match="does not match the image"):
        LiverPatchInferer(PatchGrid(8, 8))(image, MeanIntensityVAE(patch_size=8), label=label[..., :2])


def test_both_inferers_record_the_bright_fraction_of_each_patch_when_given_a_vessel_level():
    image, label = _volume()
    image[0, 0, 8:10, 0:8, 1] = 0.9  # 16 of the 64 pixels of the patch at (8, 0) at vessel level
    grid = PatchGrid(8, 8, min_liver_fraction=0.5)
    vae = LiverPatchInferer(grid, bright_level=0.8)
    vae(image, MeanIntensityVAE(patch_size=8), label=label)

    def net(x):
        return torch.cat([torch.zeros_like(x), x], dim=1)

    unet = SliceMapInferer(roi_size=(16, 16), grid=grid, bright_level=0.8)
    unet(image, net, label=label)
    for records in (vae.records[0], unet.records[0]):
        assert {(r["row"], r["col"]): r["bright_fraction"] for r in records} == {
            (0, 0): 0.0,
            (0, 8): 0.0,  # 0.5 is below the level
            (8, 0): 0.25,
            (8, 8): 0.0,
        }
    plain = LiverPatchInferer(grid)
    plain(image, MeanIntensityVAE(patch_size=8), label=label)
    assert all("bright_fraction" not in r for r in plain.records[0])


@pytest.mark.parametrize("index", [1, 2])
def test_patches_bright_at_the_vessel_level_hold_the_phantoms_true_vessels(index):
    """The bundles' vessel level (150 HU after the liver is shifted to 100 HU, window [-100, 200]) on phantoms
    with known vessel masks: every tumour-free patch with >= 10 % such pixels contains vessel voxels."""
    import numpy as np

    from livervae.data.patches import grid_patches
    from livervae.data.phantom import PhantomConfig, generate_case

    image, label, _, masks = generate_case(index, 0, PhantomConfig.small(), return_masks=True)
    hu = torch.as_tensor(image.array.astype(np.float32))
    lab = torch.as_tensor(label.array.astype(np.float32))
    vessels = torch.as_tensor(masks["vessels"].astype(np.float32))
    windowed = (hu - hu[lab >= 1].median() + 100.0 + 100.0) / 300.0
    grid = PatchGrid(8, 8)
    inferer = LiverPatchInferer(grid, bright_level=(150.0 + 100.0) / 300.0)
    found = with_vessel = 0
    for k in torch.nonzero((lab >= 1).sum(dim=(0, 1))).flatten().tolist():
        fractions = inferer.bright_fractions(windowed[..., k][None], lab[..., k][None])
        truth = grid_patches(vessels[..., k][None], lab[..., k][None], grid)
        chosen = (truth["tumor_fraction"] == 0) & (fractions >= 0.1)
        found += int(chosen.sum())
        with_vessel += int((chosen & (truth["image"].amax(dim=(1, 2, 3)) > 0)).sum())
    assert found >= 3 and with_vessel == found
