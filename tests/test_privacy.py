"""No patient name, ID or birth date from DICOM headers reaches logs, TensorBoard, reports or derived files.

Three patients in the TCIA HCC-TACE-Seg layout carry identifying headers (name, ID, birth date, other IDs,
accession number). The whole pipeline runs on them: preprocessing, a short training run (TensorBoard, checkpoints,
logs), evaluation (metrics CSV/JSON, overlays) and inference to NIfTI, PNG and DICOM-SEG. Every file written is then
searched (gzip members decompressed), as are everything printed and every log record. The DICOM-SEG is the one
output that must identify the patient (the Patient module is required by the IOD); it is checked to carry nothing
beyond what the source's required attributes hold.
"""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_fixtures import SegmentSpec, write_seg, write_study
from pydicom.sr.codedict import codes

from livervae.cli import main
from livervae.labels import LIVER, TUMOR

IDENTIFIERS = {
    "PatientName": "Doe^Jane^Quinn",
    "PatientID": "MRN-7734219",
    "PatientBirthDate": "19610314",
    "OtherPatientIDs": "ALT-55120987",
    "AccessionNumber": "ACC-99310442",
}
# What must never appear: the values and the name's parts.
FORBIDDEN = ["Doe^Jane", "Quinn", "MRN-7734219", "19610314", "ALT-55120987", "ACC-99310442"]


def _identify(files: list[Path]) -> None:
    for path in files:
        dataset = pydicom.dcmread(path)
        for keyword, value in IDENTIFIERS.items():
            setattr(dataset, keyword, value)
        dataset.save_as(path)


@pytest.fixture()
def identified_collection(tmp_path, labelled_ct):
    image, label = labelled_ct
    root = tmp_path / "HCC-TACE-Seg"
    studies = []
    for patient in ("HCC_001", "HCC_002", "HCC_003"):
        study = root / patient / "01-01-1999-NA-CT ABDOMEN-12345"
        ct_files = write_study(image, study / "3.000000-ART LIVER-13579", f"{patient}/art", 3, "ART LIVER")
        _identify(ct_files)
        segments = [
            SegmentSpec("Liver", codes.SCT.Liver, label.array >= LIVER),
            SegmentSpec("Mass", codes.SCT.Mass, label.array == TUMOR),
        ]
        seg = write_seg(ct_files, segments, study / "300.000000-Segmentation-24680" / "1-1.dcm")
        _identify([seg])
        studies.append(study / "3.000000-ART LIVER-13579")
    return root, studies


def _leaks(path: Path) -> list[str]:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data += gzip.decompress(data)
    return [value for value in FORBIDDEN if value.encode() in data]


def test_no_identifier_reaches_any_output(identified_collection, trained, tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    root, studies = identified_collection
    dataset, run, evaluation, predictions = (tmp_path / name for name in ("dataset", "run", "eval", "pred"))
    assert main(["preprocess", "--format", "hcc-tace-seg", "--source", str(root), "--out", str(dataset)]) == 0
    assert json.loads((dataset / "datalist.json").read_text())["numTraining"] == 3
    train = ["train", "--bundle", "liver_ct_segmentation", "--data", str(dataset), "--preset", "cpu", "--epochs", "1"]
    train += ["--output", str(run), "--set", "val_interval=1", "--set", f"ckpt_dir={json.dumps(str(run / 'models'))}"]
    assert main(train) == 0
    model = json.dumps(str(trained["tumor"]))
    assert (
        main(
            [
                "eval",
                "--data",
                str(dataset),
                "--split",
                "all",
                "--output",
                str(evaluation),
                "--set",
                f"model_path={model}",
            ]
        )
        == 0
    )
    for suffix in ("nii.gz", "dcm"):
        out = predictions / f"seg.{suffix}"
        assert main(["infer", "-i", str(studies[0]), "-o", str(out), "--model", str(trained["tumor"])]) == 0

    written = [p for folder in (dataset, run, evaluation, predictions) for p in folder.rglob("*") if p.is_file()]
    kinds = {p.suffix for p in written}
    assert {".json", ".csv", ".png", ".gz", ".dcm", ".pt"} <= kinds and any("tfevents" in p.name for p in written)
    leaks = {str(p): _leaks(p) for p in written if p.suffix != ".dcm" and _leaks(p)}
    assert leaks == {}
    printed = capsys.readouterr()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for text in (printed.out, printed.err, logged):
        assert not [value for value in FORBIDDEN if value in text]

    # The DICOM-SEG identifies the patient as the IOD requires, and carries no other identifier.
    seg = pydicom.dcmread(predictions / "seg.dcm")
    assert str(seg.PatientName) == IDENTIFIERS["PatientName"] and seg.PatientID == IDENTIFIERS["PatientID"]
    assert "OtherPatientIDs" not in seg
    assert np.array_equal(seg.pixel_array.shape[1:], (20, 24))
    # So does the SR measurement report written beside it (its measurements JSON and CSV were searched above).
    sr = pydicom.dcmread(predictions / "seg_sr.dcm")
    assert str(sr.PatientName) == IDENTIFIERS["PatientName"] and sr.PatientID == IDENTIFIERS["PatientID"]
    assert "OtherPatientIDs" not in sr
    assert {"seg.json", "seg.csv", "seg_sr.dcm"} <= {p.name for p in written}
