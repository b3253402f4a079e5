import json
from dataclasses import replace

import pytest
from monai.bundle import ConfigParser

from livervae.bundle import bundle_root
from livervae.bundle_names import PATCH_VAE_BUNDLE
from livervae.data.patch_cohort import STUDY_CONFIG, build_patch_cohort
from livervae.data.patches import PatchGrid, count_patches
from livervae.data.phantom import PhantomConfig
from livervae.errors import InputError

SMALL = replace(
    STUDY_CONFIG,
    inplane_spacing_mm=PhantomConfig.small().inplane_spacing_mm,
    slice_thickness_mm=PhantomConfig.small().slice_thickness_mm,
)
GRID = PatchGrid(8, 8, 0.5, 0.3)


def _bundle_counts(folder, fold):
    """Tumour patches per patient as the patch VAE bundle itself cuts them (its train.json transforms)."""
    parser = ConfigParser()
    parser.read_config(str(bundle_root(PATCH_VAE_BUNDLE) / "configs" / "train.json"))
    parser.update({"dataset_dir": str(folder), "fold": fold, "output_dir": str(folder / "runs")})
    parser.update({"pixdim": [3.0, 3.0], "patch_size": 8, "patch_stride": 8, "crop_margin": 8})
    data = parser.get_parsed_content("fold_data")
    return {p: c["tumor"] for p, c in count_patches(data["train_patches"] + data["val_patches"]).items()}


def test_every_kept_phantom_has_tumour_patches_at_the_bundle_grid_and_the_skipped_ones_do_not(tmp_path):
    out = tmp_path / "cohort"
    record = build_patch_cohort(out, 3, GRID, 3.0, 8, min_tumor_patches=8, config=SMALL, max_candidates=10)
    kept, skipped = record["kept"], record["skipped"]
    assert len(kept) == 3 and all(n >= 8 for n in kept.values()) and all(n < 8 for n in skipped.values())
    assert sorted(kept) == [e["patient_id"] for e in json.loads((out / "datalist.json").read_text())["training"]]
    # the counts are the bundle's own: fold 0 trains on the other two patients (one validates)
    counts = _bundle_counts(out, 0)
    assert counts == {p: kept[p] for p in sorted(kept)[1:]}
    assert json.loads((out / "patch_cohort.json").read_text()) == record
    stamp = (out / "datalist.json").stat().st_mtime_ns
    assert build_patch_cohort(out, 3, GRID, 3.0, 8, min_tumor_patches=8, config=SMALL, max_candidates=10) == record
    assert (out / "datalist.json").stat().st_mtime_ns == stamp  # reused, not rebuilt


def test_a_cohort_that_cannot_be_filled_is_refused_and_leaves_nothing(tmp_path):
    out = tmp_path / "cohort"
    with pytest.raises(InputError, match=r"only \d of the first 2 phantoms hold 100000 or more tumour patches"):
        build_patch_cohort(out, 2, GRID, 3.0, 8, min_tumor_patches=100000, config=SMALL, max_candidates=2)
    assert list(tmp_path.iterdir()) == []
