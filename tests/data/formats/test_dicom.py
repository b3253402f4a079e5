import shutil

import nibabel as nib
import numpy as np
from dicom_export import write_ct_series

from livervae.data.formats import SourceOptions
from livervae.data.formats.dicom import iter_cases


def test_real_series_becomes_one_unlabelled_case(real_case):
    cases = list(iter_cases(real_case / "PATIENT_DICOM", SourceOptions(case_id="ircadb 17")))
    assert len(cases) == 1
    case = cases[0]
    assert case.case_id == "ircadb_17" and case.label is None
    reference = nib.load(str(real_case / "nifti" / "ct.nii.gz"))
    assert np.array_equal(case.image.array, np.asarray(reference.dataobj))


def test_zipped_series_reads_like_a_folder(tmp_path, ct_volume):
    write_ct_series(ct_volume, tmp_path / "series")
    archive = shutil.make_archive(str(tmp_path / "export"), "zip", tmp_path / "series")
    (case,) = iter_cases(tmp_path / "export.zip", SourceOptions())
    assert case.case_id == "export"
    assert np.array_equal(case.image.array, ct_volume.array)
    assert case.image.source == archive
