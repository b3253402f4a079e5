import numpy as np
import openpyxl
import pytest
from dicom_fixtures import SegmentSpec, write_seg, write_study
from pydicom.sr.codedict import codes

from livervae.data.clinical import compute_severity
from livervae.data.formats import SourceOptions
from livervae.data.formats.hcc_tace_seg import iter_cases
from livervae.errors import InputError
from livervae.io.volume import Volume
from livervae.labels import LIVER, TUMOR

HEADER = [
    "TCIA_ID",
    "Sex",
    "Age",
    "Tr_Size",
    "tumor_nodul",
    "T_involvment",
    "TNM",
    "BCLC",
    "CLIP_Score",
    "Okuda",
    "AFP",
]
SHEET = [
    ["HCC_001", "M", 61, 5.0, "multinodular", "< or = 50%", "IIIa", "B", 2, "I", 400],
    ["HCC_002", "F", 70, 1.8, "uninodular", "< or = 50%", "I", "A", 0, "I", 5],
    ["HCC_099", "M", 58, 3.0, "uninodular", "< or = 50%", "II", "A", 1, "I", 12],
]


@pytest.fixture()
def collection(tmp_path, labelled_ct):
    """Two patients in TCIA's descriptive layout: a pre-contrast and an arterial CT, and a SEG on the arterial."""
    image, label = labelled_ct
    root = tmp_path / "HCC-TACE-Seg"
    vessel = np.zeros(image.shape, bool)
    vessel[10:12, 9:11, 2:6] = True  # inside the liver block, away from the lesions
    for patient in ("HCC_001", "HCC_002"):
        study = root / patient / "01-01-1999-NA-CT ABDOMEN-12345"
        pre = image.array.copy()
        pre[label.array > 0] -= 60  # an unenhanced phase: a different series the SEG does not annotate
        write_study(Volume(pre, image.affine), study / "2.000000-PRE LIVER-67890", f"{patient}/pre", 2, "PRE LIVER")
        arterial = write_study(image, study / "3.000000-ART LIVER-13579", f"{patient}/art", 3, "ART LIVER")
        segments = [
            SegmentSpec("Liver", codes.SCT.Liver, (label.array >= LIVER) & ~vessel),
            SegmentSpec("Mass", codes.SCT.Mass, label.array == TUMOR),
            SegmentSpec("Portal vein", codes.SCT.PortalVein, vessel),
            SegmentSpec("Aorta", codes.SCT.Aorta, np.pad(np.ones((2, 2, 8), bool), ((20, 2), (16, 2), (0, 0)))),
        ]
        write_seg(arterial, segments, study / "300.000000-Segmentation-24680" / "1-1.dcm")
    workbook = openpyxl.Workbook()
    workbook.active.append(HEADER)
    for row in SHEET:
        workbook.active.append(row)
    workbook.save(tmp_path / "HCC-TACE-Seg_clinical_data-V2.xlsx")
    return root, tmp_path / "HCC-TACE-Seg_clinical_data-V2.xlsx", vessel


def test_patients_with_seg_on_the_arterial_phase_and_severity(collection, labelled_ct):
    root, sheet, vessel = collection
    image, label = labelled_ct
    cases = list(iter_cases(root, SourceOptions(clinical_sheet=sheet)))
    assert [c.case_id for c in cases] == ["HCC_001", "HCC_002"]
    for case, row in zip(cases, SHEET):
        assert np.array_equal(case.image.array, image.array)  # the referenced (arterial) series was chosen
        expected = label.array.copy()
        expected[vessel] = 0
        assert np.array_equal(case.label.array, expected)
        assert compute_severity(case.clinical).value == pytest.approx(compute_severity(dict(zip(HEADER, row))).value)


def test_vessels_inside_the_liver_can_count_as_liver(collection, labelled_ct):
    root, sheet, _ = collection
    _, label = labelled_ct
    case, _ = iter_cases(root, SourceOptions(vessels="liver"))
    assert np.array_equal(case.label.array, label.array)
    assert case.clinical is None


def test_patient_missing_from_the_sheet_keeps_a_missing_indicator(collection, tmp_path):
    root, _, _ = collection
    (tmp_path / "partial.csv").write_text(",".join(HEADER) + "\n" + ",".join(str(v) for v in SHEET[0]) + "\n")
    cases = list(iter_cases(root, SourceOptions(clinical_sheet=tmp_path / "partial.csv")))
    assert cases[0].clinical is not None and cases[1].clinical is None


def test_patient_without_seg_is_refused(collection):
    root, _, _ = collection
    seg_folder = next((root / "HCC_002").rglob("300.000000-Segmentation-24680"))
    for path in seg_folder.iterdir():
        path.unlink()
    with pytest.raises(InputError, match="HCC_002: no DICOM Segmentation object found"):
        list(iter_cases(root, SourceOptions()))
