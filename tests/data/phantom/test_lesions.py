"""`livervae.data.phantom.lesions`: exact lesion labels, one component each, the burden strata, tumour-free cases."""

from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy import ndimage

from livervae.data.phantom import PhantomConfig, generate_case
from livervae.labels import LIVER, TUMOR

FULL = np.ones((3, 3, 3), dtype=bool)


def test_label_values_and_lesion_volumes_match_their_nominal_diameters(cohort: list[tuple]) -> None:
    # The known answer is geometry, not the generator's own bookkeeping: a lesion's labelled volume is that of the
    # ellipsoid of its nominal (volume-equivalent) diameter, pi/6 d^3, up to its few-percent irregular outline and
    # the voxel grid.
    checked = 0
    for image, label, truth, _ in cohort:
        values = set(np.unique(label.array).tolist())
        assert values <= {0, 1, 2} and {0, 1} <= values
        components, _ = ndimage.label(label.array == TUMOR, structure=FULL)
        inverse = np.linalg.inv(image.affine)
        for lesion in truth.lesions:
            across = lesion.diameter_mm / min(image.spacing)
            if across < 5:
                continue  # a few voxels across: the grid dominates
            ijk = np.rint(nib.affines.apply_affine(inverse, np.array(lesion.center_mm))).astype(int)
            labelled_mm3 = int((components == components[tuple(ijk)]).sum()) * image.voxel_volume_ml * 1000
            ratio = labelled_mm3 / (np.pi / 6 * lesion.diameter_mm**3)
            assert (0.85 if across < 8 else 0.93) < ratio < (1.15 if across < 8 else 1.08), (truth.index, ratio)
            checked += 1
    assert checked >= 20


def test_each_lesion_is_one_component_inside_the_liver(cohort: list[tuple]) -> None:
    for image, label, truth, _ in cohort:
        tumour = label.array == TUMOR
        # Every tumour voxel's 26-neighbourhood is liver or tumour: lesions never touch the liver surface.
        assert np.all(label.array[ndimage.binary_dilation(tumour, FULL)] >= LIVER)
        components, count = ndimage.label(tumour, structure=FULL)
        assert count == len(truth.lesions)
        inverse = np.linalg.inv(image.affine)
        seen = set()
        for lesion in truth.lesions:
            ijk = np.rint(nib.affines.apply_affine(inverse, np.array(lesion.center_mm))).astype(int)
            component = int(components[tuple(ijk)])
            assert component > 0 and component not in seen
            seen.add(component)
            assert int((components == component).sum()) == lesion.n_voxels


def test_cohort_spans_lesion_sizes_and_appearances(cohort: list[tuple]) -> None:
    lesions = [lesion for _, _, truth, _ in cohort[:12] for lesion in truth.lesions]
    diameters = [lesion.diameter_mm for lesion in lesions]
    assert min(diameters) < 10.0 and max(diameters) > 20.0
    assert any(10.0 <= d <= 20.0 for d in diameters)
    assert {lesion.kind for lesion in lesions} == {"hypo", "hyper"}
    assert {lesion.blurred for lesion in lesions} == {True, False}
    for lesion in lesions:
        if lesion.kind == "hypo":
            assert -60.0 <= lesion.contrast_hu <= -25.0
        else:
            assert 25.0 <= lesion.contrast_hu <= 50.0
    burdens = [truth.burden for _, _, truth, _ in cohort[:8]]
    # Burden is stratified per block of 8: one case in each eighth of [0, 1).
    assert sorted(int(b * 8) for b in burdens) == list(range(8))
    tumor_ml = [truth.tumor_ml for _, _, truth, _ in cohort]
    assert max(tumor_ml) > 20 * min(tumor_ml)


def test_tumor_free_fraction_one_gives_no_tumor() -> None:
    config = PhantomConfig(inplane_spacing_mm=(2.8, 3.2), slice_thickness_mm=(4.0, 5.0), tumor_free_fraction=1.0)
    image, label, truth = generate_case(7, 0, config)
    assert truth.lesions == () and truth.tumor_voxels == 0 and not np.any(label.array == TUMOR)
    assert truth.liver_voxels > 0
