"""Finding the cases of a batch: NIfTI files, DICOM series grouped by UID, the series rule, manifest CSVs."""

from __future__ import annotations

from pathlib import Path

import pytest
from dicom_export import SeriesIdentity, write_ct_series

from livervae.batch.cases import discover
from livervae.data.phantom import PhantomConfig, generate_case
from livervae.errors import InputError
from livervae.io.volume import Volume


def test_folder_gives_every_nifti_and_ct_series_with_mirrored_outputs(phantom_archive, tmp_path):
    root, uids = phantom_archive
    out = tmp_path / "out"
    found = discover(root, out)
    assert [c.case for c in found.cases] == [
        f"dicom/patient1/ct#{uids['ct_uid']}",
        "nifti/broken.nii.gz",
        "nifti/site0/phantom0.nii.gz",
        "nifti/site1/phantom1.nii.gz",
    ]
    assert [c.output for c in found.cases] == [
        out / "dicom/patient1/ct.dcm",
        out / "nifti/broken.nii.gz",
        out / "nifti/site0/phantom0.nii.gz",
        out / "nifti/site1/phantom1.nii.gz",
    ]
    dicom = found.cases[0]
    assert dicom.series_uid == uids["ct_uid"] and dicom.input == root / "dicom/patient1/ct"
    assert len(dicom.files) == generate_case(7, 0, PhantomConfig.small())[0].shape[2]
    assert [(s.case, s.reason, s.failed) for s in found.skipped] == [
        (f"dicom/patient1/mr#{uids['mr_uid']}", "Modality MR, not CT", False)
    ]
    assert [c.output.name for c in discover(root, out, output_format="nifti").cases][0] == "ct.nii.gz"


def _two_ct_series(folder: Path, shared_folder: bool) -> tuple[str, str]:
    image, _, _ = generate_case(3, 0, PhantomConfig.small())
    thin = SeriesIdentity(uid_seed="study", series_number=1)
    write_ct_series(image, folder / ("" if shared_folder else "thin"), thin)
    fewer = Volume(image.array[:, :, ::2].copy(), image.affine.copy(), "fewer slices")
    fewer.affine[:3, 2] *= 2
    thick = SeriesIdentity(uid_seed="study", series_uid=SeriesIdentity(uid_seed="thick").uid("series"), series_number=2)
    target = folder / ("" if shared_folder else "thick")
    target.mkdir(parents=True, exist_ok=True)
    for path in write_ct_series(fewer, target / "tmp", thick):
        path.rename(target / f"thick-{path.name}")
    (target / "tmp").rmdir()
    return thin.uid("series"), thick.series_uid


def test_several_ct_series_of_a_study_keep_the_one_with_most_slices_unless_all_series(tmp_path):
    root, out = tmp_path / "study", tmp_path / "out"
    thin, thick = _two_ct_series(root, shared_folder=False)
    found = discover(root, out)
    assert [c.series_uid for c in found.cases] == [thin]
    assert [(s.series_uid, s.failed) for s in found.skipped] == [(thick, False)]
    assert "another CT series of the study was chosen" in found.skipped[0].reason
    both = discover(root, out, all_series=True)
    assert sorted(c.series_uid for c in both.cases) == sorted([thin, thick]) and not both.skipped


def test_series_sharing_a_folder_get_their_uid_in_the_output_name(tmp_path):
    root, out = tmp_path / "study", tmp_path / "out"
    thin, thick = _two_ct_series(root, shared_folder=True)
    found = discover(root, out, all_series=True)
    assert sorted(c.output for c in found.cases) == sorted([out / f"study/{thin}.dcm", out / f"study/{thick}.dcm"])
    (single,) = discover(root, out).cases
    assert single.output == out / "study.dcm" and len(single.files) > 0


def test_corrupt_dicom_file_is_an_unreadable_input_and_the_output_folder_is_not_walked(phantom_archive, tmp_path):
    root, uids = phantom_archive
    (root / "dicom" / "patient1" / "ct" / "IM-0003.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    out = root / "results"
    (out / "old").mkdir(parents=True)
    (out / "old" / "x.nii.gz").write_bytes(b"an earlier output")
    found = discover(root, out)
    failed = [s for s in found.skipped if s.failed]
    # The file itself, and its series, now one slice short.
    assert [(s.case, s.reason) for s in failed] == [
        (
            f"dicom/patient1/ct#{uids['ct_uid']}",
            "1 missing slice(s): gap of 8 mm after IM-0002.dcm where slices are 4 mm apart",
        ),
        ("dicom/patient1/ct/IM-0003.dcm", "cannot read DICOM header (file is truncated or corrupt)"),
    ]
    assert not any("results" in c.case for c in found.cases)


def test_manifest_csv_rows_resolve_relative_paths_series_and_outputs(phantom_archive, tmp_path):
    root, uids = phantom_archive
    manifest = root / "cases.csv"
    manifest.write_text(
        "input,series_uid,output\n"
        "nifti/site0/phantom0.nii.gz,,first.nii.gz\n"
        f"dicom/patient1,{uids['ct_uid']},\n"
        f"{root / 'nifti/site1/phantom1.nii.gz'},,\n"
    )
    out = tmp_path / "out"
    found = discover(manifest, out)
    assert [(c.case, c.output) for c in found.cases] == [
        ("nifti/site0/phantom0.nii.gz", out / "first.nii.gz"),
        (f"dicom/patient1#{uids['ct_uid']}", out / "dicom/patient1.dcm"),
        (str(root / "nifti/site1/phantom1.nii.gz"), out / "nifti/site1/phantom1.nii.gz"),
    ]
    assert found.cases[1].input == root / "dicom/patient1/ct"


@pytest.mark.parametrize(
    "text, problem",
    [
        ("path\nx.nii.gz\n", "a manifest CSV needs a header row with an 'input' column"),
        ("input\n\n,\n", "line 2: empty 'input'"),
    ],
)
def test_bad_manifest_csv_is_refused_naming_the_file(tmp_path, text, problem):
    manifest = tmp_path / "cases.csv"
    manifest.write_text(text)
    with pytest.raises(InputError) as error:
        discover(manifest, tmp_path / "out")
    assert str(error.value) == f"{manifest}: {problem}"


def test_dicom_seg_output_for_nifti_input_and_missing_input_are_refused(phantom_archive, tmp_path):
    root, _ = phantom_archive
    with pytest.raises(InputError, match="broken.nii.gz: --output-format dicom-seg needs DICOM input"):
        discover(root, tmp_path / "out", output_format="dicom-seg")
    with pytest.raises(InputError, match="input not found"):
        discover(tmp_path / "nowhere", tmp_path / "out")
