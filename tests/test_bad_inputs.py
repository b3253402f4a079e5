"""The bad-input corpus: every entry point refuses bad input with one line naming the file and the fault.

Each case builds its bad input in a temporary folder (from the small synthetic CT of conftest.py, real DICOM
written from it, or a briefly trained model), runs the `livervae` command in-process, and checks: exit status 2,
one `livervae: error: <file>: <fault>` line on stderr and no traceback, and no output left behind (neither the
requested output nor a staging sibling).
"""

from __future__ import annotations

import errno
import gzip
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from dicom_fixtures import write_study

from livervae.cli import main
from livervae.io.volume import Volume


@dataclass
class Case:
    """One bad input: the command line, where the fault is and what the message must say."""

    argv: list[str]
    culprit: str  # a path (or name) the message must contain
    fault: str  # a regular expression the message must match
    outputs: list[Path] = field(default_factory=list)  # must not exist afterwards
    env: dict[str, str] = field(default_factory=dict)
    patch: Callable[[pytest.MonkeyPatch], None] | None = None


# -- fixtures in real layouts ---------------------------------------------------------------------------------


def _series(volume: Volume, folder: Path, seed: str = "corpus", **kwargs) -> list[Path]:
    return write_study(volume, folder, seed, **kwargs)


def _edit(path: Path, **attributes) -> None:
    dataset = pydicom.dcmread(path)
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    dataset.save_as(path)


def _lits(folder: Path, image: np.ndarray, label: np.ndarray | None, affine: np.ndarray, label_affine=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(image, affine), str(folder / "volume-0.nii"))
    if label is not None:
        target = affine if label_affine is None else label_affine
        nib.save(nib.Nifti1Image(label, target), str(folder / "segmentation-0.nii"))
    return folder


def _preprocess(fmt: str, source: Path, out: Path, *extra: str) -> list[str]:
    return ["preprocess", "--format", fmt, "--source", str(source), "--out", str(out), *extra]


# -- the corpus -------------------------------------------------------------------------------------------------


def dicom_cases(tmp: Path, ct: Volume) -> dict[str, Case]:
    out = tmp / "out"
    cases: dict[str, Case] = {}

    folder = tmp / "truncated"
    files = _series(ct, folder)
    files[3].write_bytes(files[3].read_bytes()[: len(files[3].read_bytes()) // 3])
    cases["truncated DICOM file"] = Case(_preprocess("dicom", folder, out), files[3].name, "truncated|corrupt|decode")

    folder = tmp / "garbage"
    folder.mkdir()
    (folder / "IM-0001.dcm").write_bytes(np.random.default_rng(0).bytes(4096))
    cases["file that is not DICOM"] = Case(_preprocess("dicom", folder, out), "IM-0001.dcm", "cannot read DICOM header")

    folder = tmp / "non_image"
    folder.mkdir()
    report = pydicom.Dataset()
    report.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR: no pixels
    report.SOPInstanceUID = pydicom.uid.generate_uid()
    report.Modality = "SR"
    report.file_meta = pydicom.dataset.FileMetaDataset()
    report.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    report.file_meta.MediaStorageSOPClassUID = report.SOPClassUID
    report.file_meta.MediaStorageSOPInstanceUID = report.SOPInstanceUID
    pydicom.dcmwrite(folder / "report.dcm", report, enforce_file_format=True)
    cases["non-image DICOM only"] = Case(_preprocess("dicom", folder, out), "non_image", "no DICOM image slices")

    folder = tmp / "two_series"
    _series(ct, folder / "a", "one", series_number=2)
    _series(ct, folder / "b", "two", series_number=3)
    cases["two series in one folder"] = Case(_preprocess("dicom", folder, out), "two_series", "2 image series")
    cases["unknown --series-uid"] = Case(
        _preprocess("dicom", folder, out, "--series-uid", "1.2.3.4"), "two_series", "no series with SeriesInstanceUID"
    )

    folder = tmp / "missing_slice"
    files = _series(ct, folder)
    files[4].unlink()
    cases["missing slice"] = Case(_preprocess("dicom", folder, out), "missing_slice", "missing")

    folder = tmp / "uneven"
    files = _series(ct, folder)
    position = pydicom.dcmread(files[5]).ImagePositionPatient
    _edit(files[5], ImagePositionPatient=[position[0], position[1], float(position[2]) + 0.9])
    cases["non-uniform slice spacing"] = Case(_preprocess("dicom", folder, out), "uneven", "spacing")

    folder = tmp / "tilt"
    files = _series(ct, folder)
    for index, path in enumerate(files):
        position = pydicom.dcmread(path).ImagePositionPatient
        _edit(path, ImagePositionPatient=[position[0], float(position[1]) + 0.5 * index, position[2]])
    cases["gantry tilt"] = Case(_preprocess("dicom", folder, out), "tilt", "gantry tilt")

    folder = tmp / "jpeg2000"
    files = _series(ct, folder)
    rng = np.random.default_rng(3)
    for path in files:
        dataset = pydicom.dcmread(path)
        # A JPEG 2000 frame of random bytes: well-formed encapsulation that no decoder can decode.
        dataset.PixelData = pydicom.encaps.encapsulate([rng.bytes(512)])
        dataset["PixelData"].VR = "OB"
        dataset["PixelData"].is_undefined_length = True
        dataset.file_meta.TransferSyntaxUID = pydicom.uid.JPEG2000Lossless
        dataset.save_as(path, enforce_file_format=True)
    cases["undecodable compressed transfer syntax"] = Case(_preprocess("dicom", folder, out), "IM-", "decode")

    folder = tmp / "mr"
    for path in _series(ct, folder):
        _edit(path, Modality="MR")
    cases["MR instead of CT"] = Case(_preprocess("dicom", folder, out), "mr", "Modality 'MR', expected 'CT'")

    folder = tmp / "single_slice"
    files = _series(ct, folder)
    for path in files[1:]:
        path.unlink()
    cases["2D image (one slice)"] = Case(_preprocess("dicom", folder, out), "single_slice", "2D image")

    folder = tmp / "slice_size"
    files = _series(ct, folder)
    _edit(files[2], Rows=ct.shape[1] + 2)
    cases["slice of another size"] = Case(_preprocess("dicom", folder, out), files[2].name, "size differs")

    folder = tmp / "orientation"
    files = _series(ct, folder)
    _edit(files[2], ImageOrientationPatient=[1, 0, 0, 0, 0.9, 0.1])
    cases["slice of another orientation"] = Case(_preprocess("dicom", folder, out), files[2].name, "orientation")

    cases["source folder missing"] = Case(_preprocess("dicom", tmp / "nowhere", out), "nowhere", "not found")
    return cases


def nifti_cases(tmp: Path, ct: Volume, label: Volume) -> dict[str, Case]:
    out = tmp / "out"
    image, lab, affine = ct.array.astype(np.int16), label.array.astype(np.uint8), ct.affine
    cases: dict[str, Case] = {}

    def lits(name: str, img, seg, label_affine=None) -> Path:
        return _lits(tmp / name, img, seg, affine, label_affine)

    cases["2D image"] = Case(_preprocess("lits", lits("2d", image[:, :, 0], lab[:, :, 0]), out), "volume-0", "3D")
    four_d = np.stack([image, image], axis=-1)
    cases["4D NIfTI"] = Case(_preprocess("lits", lits("4d", four_d, lab), out), "volume-0", "expected a 3D volume")
    with_nan = image.astype(np.float32)
    with_nan[2, 2, 2] = np.nan
    cases["NaN voxels"] = Case(_preprocess("lits", lits("nan", with_nan, lab), out), "volume-0", "NaN or infinite")
    with_inf = image.astype(np.float32)
    with_inf[3, 3, 3] = np.inf
    cases["infinite voxels"] = Case(_preprocess("lits", lits("inf", with_inf, lab), out), "volume-0", "NaN or inf")
    empty = np.zeros((24, 20, 0), dtype=np.int16)
    cases["zero-sized dimension"] = Case(
        _preprocess("lits", lits("zero", empty, None), out), "volume-0", "zero-sized|cannot read"
    )

    folder = tmp / "garbage_nifti"
    folder.mkdir()
    (folder / "volume-0.nii.gz").write_bytes(gzip.compress(np.random.default_rng(1).bytes(2048)))
    cases["unreadable NIfTI"] = Case(_preprocess("lits", folder, out), "volume-0.nii.gz", "cannot read as NIfTI")

    folder = lits("truncated_nifti", image, lab)
    nib.save(nib.Nifti1Image(image, affine), str(folder / "volume-0.nii.gz"))
    (folder / "volume-0.nii").unlink()
    data = (folder / "volume-0.nii.gz").read_bytes()
    (folder / "volume-0.nii.gz").write_bytes(data[: len(data) // 2])
    cases["truncated NIfTI"] = Case(_preprocess("lits", folder, out), "volume-0.nii.gz", "cannot read as NIfTI")

    cases["label on another grid (shape)"] = Case(
        _preprocess("lits", lits("shape", image, lab[:, :-2]), out), "segmentation-0", "grid|shape"
    )
    shifted = affine.copy()
    shifted[0, 3] += 5.0
    cases["label on another grid (affine)"] = Case(
        _preprocess("lits", lits("affine", image, lab, shifted), out), "segmentation-0", "affine|grid|origin"
    )
    unknown = lab.copy()
    unknown[1, 1, 1] = 5
    cases["labels outside 0/1/2"] = Case(
        _preprocess("lits", lits("labels", image, unknown), out), "segmentation-0", "5"
    )
    cases["empty liver"] = Case(
        _preprocess("lits", lits("empty_liver", image, np.zeros_like(lab)), out),
        "segmentation-0",
        "empty liver|no liver",
    )
    scaled = (image.astype(np.float32) + 1024) / 4096
    cases["not in Hounsfield units"] = Case(
        _preprocess("lits", lits("not_hu", scaled, lab), out), "volume-0", "Hounsfield|HU"
    )
    cases["volume above the voxel limit"] = Case(
        _preprocess("lits", lits("large", image, lab), out),
        "volume-0",
        "above the limit",
        env={"LIVERVAE_MAX_VOXELS": "1000"},
    )

    folder = tmp / "Task03_Liver"
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    (folder / "dataset.json").write_text(
        json.dumps(
            {
                "modality": {"0": "CT"},
                "labels": {"0": "background", "1": "liver", "2": "cancer"},
                "training": [{"image": "./imagesTr/liver_0.nii.gz", "label": "./labelsTr/liver_0.nii.gz"}],
                "test": [],
            }
        )
    )
    cases["MSD dataset.json listing a missing file"] = Case(
        _preprocess("msd", folder, out), "dataset.json", "does not exist"
    )
    folder = tmp / "Task03_empty"
    folder.mkdir()
    cases["MSD folder without dataset.json"] = Case(_preprocess("msd", folder, out), "Task03_empty", "dataset.json")
    folder = tmp / "ircadb_no_masks"
    (folder / "PATIENT_DICOM").mkdir(parents=True)
    cases["3D-IRCADb folder without masks"] = Case(_preprocess("ircadb", folder, out), "ircadb_no_masks", "MASKS")
    return cases


def output_cases(tmp: Path, ct: Volume, label: Volume) -> dict[str, Case]:
    source = _lits(tmp / "good", ct.array.astype(np.int16), label.array.astype(np.uint8), ct.affine)
    cases: dict[str, Case] = {}
    existing = tmp / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("user data")
    cases["output folder exists"] = Case(_preprocess("lits", source, existing), "existing", "exists|--overwrite")
    blocker = tmp / "a_file"
    blocker.write_text("not a folder")
    cases["output folder not writable"] = Case(
        _preprocess("lits", source, blocker / "out"), "a_file", "not writable|not a directory|cannot"
    )

    def disk_full(monkeypatch: pytest.MonkeyPatch) -> None:
        def refuse(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(nib, "save", refuse)

    cases["disk full while writing"] = Case(
        _preprocess("lits", source, tmp / "full"), "full", "space|disk full", outputs=[tmp / "full"], patch=disk_full
    )
    cases["phantom cohort of zero cases"] = Case(
        ["phantom", "--n", "0", "--out", str(tmp / "none")], "", "at least 1 case", outputs=[tmp / "none"]
    )
    return cases


def model_cases(tmp: Path, ct: Volume, trained: dict) -> dict[str, Case]:
    image = tmp / "ct.nii.gz"
    nib.save(nib.Nifti1Image(ct.array.astype(np.int16), ct.affine), str(image))
    out = tmp / "pred.nii.gz"
    cases: dict[str, Case] = {}

    def infer(*extra: str, output: Path = out, source: Path = image) -> list[str]:
        return ["infer", "-i", str(source), "-o", str(output), "--device", "cpu", *extra]

    cases["input not found"] = Case(infer(source=tmp / "missing.nii.gz"), "missing.nii.gz", "not found")
    text = tmp / "notes.txt"
    text.write_text("not an image")
    cases["input neither NIfTI nor DICOM"] = Case(infer(source=text), "notes.txt", "NIfTI file .* or a DICOM")
    cases["output of an unknown type"] = Case(infer(output=tmp / "pred.png"), "pred.png", "output must end")
    cases["DICOM-SEG output for a NIfTI input"] = Case(infer(output=tmp / "seg.dcm"), "seg.dcm", "DICOM")
    garbage = tmp / "garbage.pt"
    garbage.write_bytes(np.random.default_rng(2).bytes(1000))
    cases["corrupt checkpoint"] = Case(infer("--model", str(garbage)), "garbage.pt", "weights-only checkpoint")
    truncated = tmp / "truncated.pt"
    data = Path(trained["tumor"]).read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    cases["truncated checkpoint"] = Case(infer("--model", str(truncated)), "truncated.pt", "weights-only checkpoint")
    pickled = tmp / "pickled.pt"
    torch.save({"model": torch.nn.Linear(2, 2)}, pickled)  # a whole module: needs unpickling code
    cases["checkpoint that needs unpickling code"] = Case(
        infer("--model", str(pickled)), "pickled.pt", "weights-only checkpoint"
    )
    cases["checkpoint of another network"] = Case(
        infer("--model", str(trained["liver"])), "model.pt", "do not fit the network|settings"
    )
    cases["missing checkpoint"] = Case(infer("--model", str(tmp / "none.pt")), "none.pt", "no trained model|not found")
    blocker = tmp / "a_file"
    blocker.write_text("x")
    cases["output folder of infer not writable"] = Case(
        infer("--model", str(trained["tumor"]), output=blocker / "pred.nii.gz"), "a_file", "not writable|directory"
    )
    nan_image = tmp / "nan.nii.gz"
    values = ct.array.astype(np.float32)
    values[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(values, ct.affine), str(nan_image))
    cases["NaN input to infer"] = Case(infer(source=nan_image), "nan.nii.gz", "NaN")

    # Training and evaluation on damaged datasets.
    dataset = tmp / "dataset"
    shutil.copytree(trained["data"], dataset)
    datalist = json.loads((dataset / "datalist.json").read_text())
    removed = dataset / datalist["training"][0]["image"]
    removed.unlink()
    cases["datalist pointing to missing files"] = Case(
        ["train", "--bundle", "liver_ct_segmentation", "--data", str(dataset), "--output", str(tmp / "run")],
        removed.name,
        "not found|missing|does not exist",
    )
    no_liver = tmp / "no_liver"
    shutil.copytree(trained["data"], no_liver)
    first = json.loads((no_liver / "datalist.json").read_text())["training"]
    train_entry = next(e for e in first if e["fold"] != 0)
    label_path = no_liver / train_entry["label"]
    reference = nib.load(str(label_path))
    nib.save(nib.Nifti1Image(np.zeros(reference.shape, np.uint8), reference.affine), str(label_path))
    cases["empty liver in training data"] = Case(
        [
            "train",
            "--bundle",
            "liver_tumor_ct_segmentation",
            "--data",
            str(no_liver),
            "--preset",
            "cpu",
            "--epochs",
            "1",
            "--output",
            str(tmp / "run_no_liver"),
            "--set",
            f"liver_model_path={json.dumps(str(trained['liver']))}",
            "--set",
            "cache_rate=0.0",
            "--set",
            f"ckpt_dir={json.dumps(str(tmp / 'models_no_liver'))}",
        ],
        Path(train_entry["label"]).name,
        "empty liver",
    )
    cases["fold that does not exist"] = Case(
        [
            "eval",
            "--data",
            str(trained["data"]),
            "--fold",
            "7",
            "--set",
            f"model_path={json.dumps(str(trained['tumor']))}",
        ],
        "",
        "fold",
    )
    return cases


def bundle_config_case(tmp: Path, trained: dict) -> dict[str, Case]:
    from livervae.bundle import bundle_root

    broken = tmp / "broken_bundle"
    shutil.copytree(bundle_root("liver_ct_segmentation"), broken, ignore=shutil.ignore_patterns("models", "runs"))
    config = json.loads((broken / "configs" / "train.json").read_text())
    del config["train"]["inferer"]
    (broken / "configs" / "train.json").write_text(json.dumps(config))
    argv = ["train", "--bundle", str(broken), "--allow-external-bundle", "--data", str(trained["data"])]
    return {"bundle config with a missing key": Case(argv, "train.json", r"lacks required key\(s\) train#inferer")}


# -- the test ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, trained) -> dict[str, Case]:
    from conftest import small_ct_volume, small_labelled_ct

    tmp = tmp_path_factory.mktemp("corpus")
    ct = small_ct_volume()
    _, label = small_labelled_ct(ct)
    cases: dict[str, Case] = {}
    for group, build in [
        ("dicom", lambda d: dicom_cases(d, ct)),
        ("nifti", lambda d: nifti_cases(d, ct, label)),
        ("output", lambda d: output_cases(d, ct, label)),
        ("model", lambda d: model_cases(d, ct, trained)),
        ("bundle", lambda d: bundle_config_case(d, trained)),
    ]:
        folder = tmp / group
        folder.mkdir()
        cases.update(build(folder))
    return cases


CASE_NAMES = [
    "truncated DICOM file",
    "file that is not DICOM",
    "non-image DICOM only",
    "two series in one folder",
    "unknown --series-uid",
    "missing slice",
    "non-uniform slice spacing",
    "gantry tilt",
    "undecodable compressed transfer syntax",
    "MR instead of CT",
    "2D image (one slice)",
    "slice of another size",
    "slice of another orientation",
    "source folder missing",
    "2D image",
    "4D NIfTI",
    "NaN voxels",
    "infinite voxels",
    "zero-sized dimension",
    "unreadable NIfTI",
    "truncated NIfTI",
    "label on another grid (shape)",
    "label on another grid (affine)",
    "labels outside 0/1/2",
    "empty liver",
    "not in Hounsfield units",
    "volume above the voxel limit",
    "MSD dataset.json listing a missing file",
    "MSD folder without dataset.json",
    "3D-IRCADb folder without masks",
    "output folder exists",
    "output folder not writable",
    "disk full while writing",
    "phantom cohort of zero cases",
    "input not found",
    "input neither NIfTI nor DICOM",
    "output of an unknown type",
    "DICOM-SEG output for a NIfTI input",
    "corrupt checkpoint",
    "truncated checkpoint",
    "checkpoint that needs unpickling code",
    "checkpoint of another network",
    "missing checkpoint",
    "output folder of infer not writable",
    "NaN input to infer",
    "datalist pointing to missing files",
    "empty liver in training data",
    "fold that does not exist",
    "bundle config with a missing key",
]


def test_the_corpus_is_complete(corpus):
    assert sorted(corpus) == sorted(CASE_NAMES) and len(CASE_NAMES) >= 30


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_is_refused_in_one_line_without_output(corpus, name, capsys, monkeypatch, tmp_path):
    case = corpus[name]
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    if case.patch is not None:
        case.patch(monkeypatch)
    monkeypatch.chdir(tmp_path)  # relative default outputs (runs/...) land here, where they are checked
    outputs = case.outputs or [Path(a) for flag, a in zip(case.argv, case.argv[1:]) if flag in ("--out", "-o")]
    before = {p.parent: set(p.parent.iterdir()) if p.parent.is_dir() else set() for p in outputs}
    status = main(case.argv)
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.startswith("livervae: error:")]
    assert status == 2, err
    assert "Traceback" not in err and len(lines) == 1, err
    assert case.culprit in lines[0] and re.search(case.fault, lines[0]), lines[0]
    for path in outputs:
        if path.name == "existing":
            assert sorted(p.name for p in path.iterdir()) == ["keep.txt"]  # the user's folder is untouched
            continue
        assert not path.exists(), f"{path} was left behind"
        if path.parent.is_dir():
            assert set(path.parent.iterdir()) == before[path.parent], "a staging file was left behind"
