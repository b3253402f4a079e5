"""A small archive for the batch tests: phantom NIfTI files, a phantom DICOM study with a CT and an MR series,
the real 3D-IRCADb #17 DICOM series (linked in place), and one broken NIfTI file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dicom_export import SeriesIdentity, write_ct_series

from livervae.data.phantom import PhantomConfig, generate_case
from livervae.io.nifti import save_nifti

MR_SERIES = SeriesIdentity(uid_seed="mr")


def _write_phantom_archive(root: Path, n_nifti: int = 2) -> dict[str, str]:
    for index in range(n_nifti):
        image, _, _ = generate_case(index, 0, PhantomConfig.small())
        save_nifti(image, root / "nifti" / f"site{index % 2}" / f"phantom{index}.nii.gz")
    image, _, _ = generate_case(7, 0, PhantomConfig.small())
    ct = SeriesIdentity(uid_seed="study")
    write_ct_series(image, root / "dicom" / "patient1" / "ct", ct)
    mr = SeriesIdentity(uid_seed="study", series_uid=MR_SERIES.uid("series"), modality="MR", series_number=2)
    write_ct_series(image, root / "dicom" / "patient1" / "mr", mr)
    broken = root / "nifti" / "broken.nii.gz"
    broken.write_bytes(b"this is not a NIfTI file")
    return {"ct_uid": ct.uid("series"), "mr_uid": mr.series_uid}


@pytest.fixture()
def phantom_archive(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Two phantom NIfTI CTs, one phantom DICOM CT series beside an MR series of the same study, a broken file."""
    root = tmp_path / "archive"
    return root, _write_phantom_archive(root)


@pytest.fixture()
def mixed_archive(tmp_path: Path, real_case: Path) -> tuple[Path, dict[str, str]]:
    """`phantom_archive` plus the real CT's DICOM series (files linked, not copied)."""
    root = tmp_path / "archive"
    uids = _write_phantom_archive(root)
    real = root / "dicom" / "ircadb17"
    real.mkdir(parents=True)
    for path in sorted((real_case / "PATIENT_DICOM").iterdir()):
        os.symlink(path, real / path.name)
    return root, uids
