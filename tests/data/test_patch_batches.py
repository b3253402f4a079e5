import pytest
import torch
from monai.transforms import Flip, Rotate90

from livervae.data.patch_batches import PatchBatchDataset, apply_symmetries, patch_batch_loader
from livervae.data.patches import balance_patients
from livervae.errors import InputError
from livervae.transforms import PatchTargetsd


def _patches(n=12, size=8):
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(n):
        mask = torch.zeros(1, size, size)
        mask[0, : 1 + i % 5, : 2 + i % 3] = 1  # tumour in the top-left corner, of several sizes
        out.append({"image": torch.rand(1, size, size, generator=g), "mask": mask, "patient_id": f"p{i % 3}"})
    return out


def test_the_eight_symmetries_are_monai_rotations_then_a_column_mirror():
    patch = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(8, 1, 1, 1)
    out = apply_symmetries(patch, torch.arange(8))
    for op in range(8):
        expected = Rotate90(k=op % 4, spatial_axes=(0, 1))(patch[op])
        expected = Flip(spatial_axis=1)(expected) if op >= 4 else expected
        assert torch.equal(out[op], torch.as_tensor(expected)), op
    assert len({tuple(o.flatten().tolist()) for o in out}) == 8  # all distinct on an asymmetric patch


def test_targets_of_augmented_batches_equal_patch_targets_of_the_same_augmented_patch():
    patches = _patches()
    dataset = PatchBatchDataset(patches, tumor_threshold=0.1, augment=True)
    torch.manual_seed(3)
    batch = dataset[list(range(len(patches)))]
    for i in range(len(patches)):
        reference = PatchTargetsd("mask", tumor_threshold=0.1)({"mask": batch["mask"][i]})
        assert int(batch["label"][i]) == int(reference["label"])
        assert batch["coords"][i].tolist() == pytest.approx(reference["coords"].tolist())
        assert float(batch["has_tumor"][i]) == float(reference["has_tumor"])
        # the image moved with its mask: the augmented pair is one of the symmetries of the stored pair
        stored = torch.cat([patches[i]["image"], patches[i]["mask"]])
        moved = torch.cat([batch["image"][i], batch["mask"][i]])
        candidates = apply_symmetries(stored[None].repeat(8, 1, 1, 1), torch.arange(8))
        assert any(torch.equal(moved, c) for c in candidates)


def test_validation_batches_are_the_patches_unchanged_and_in_order():
    patches = _patches()
    batch = PatchBatchDataset(patches, augment=False)[[2, 0, 5]]
    assert torch.equal(batch["image"], torch.stack([patches[k]["image"] for k in (2, 0, 5)]))
    assert torch.equal(batch["mask"], torch.stack([patches[k]["mask"] for k in (2, 0, 5)]))
    assert PatchBatchDataset(patches, augment=False)[4]["image"].shape == (1, 1, 8, 8)


def test_every_symmetry_is_drawn_and_balanced_duplicates_are_stored_once():
    patches = _patches(3) + _patches(1)
    balanced = balance_patients(patches, seed=0)
    dataset = PatchBatchDataset(balanced)
    assert len(dataset) == len(balanced) and dataset.images.shape[0] == len({id(p["image"]) for p in balanced})
    torch.manual_seed(0)
    single = PatchBatchDataset([_patches(1)[0]] * 400)
    assert single.images.shape[0] == 1
    seen = {tuple(single[[i]]["image"].flatten().tolist()) for i in range(400)}
    assert len(seen) == 8


def test_an_epoch_is_one_dataset_call_per_batch_and_covers_every_patch_once():
    class Counting(PatchBatchDataset):
        calls = 0

        def __getitem__(self, indices):
            Counting.calls += 1
            batch = super().__getitem__(indices)
            batch["index"] = torch.as_tensor(indices)
            return batch

    dataset = Counting(_patches(1) * 1000 + _patches(10), augment=True)
    loader = patch_batch_loader(dataset, 256, shuffle=True)
    torch.manual_seed(1)
    indices = torch.cat([b["index"] for b in loader])
    assert Counting.calls == len(loader) == 4 and sorted(indices.tolist()) == list(range(1010))
    assert indices.tolist() != list(range(1010))  # shuffled
    assert [b["image"].shape[0] for b in patch_batch_loader(dataset, 256, shuffle=False)] == [256, 256, 256, 242]


def test_bad_patch_sets_and_batch_sizes_are_refused():
    with pytest.raises(InputError, match="no patches"):
        PatchBatchDataset([])
    mixed = _patches(1, 8) + _patches(1, 16)
    with pytest.raises(InputError, match="different shapes"):
        PatchBatchDataset(mixed)
    with pytest.raises(InputError, match="batch_size"):
        patch_batch_loader(PatchBatchDataset(_patches(2)), 0)
