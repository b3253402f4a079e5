import numpy as np

from livervae.data.formats import SourceOptions
from livervae.data.formats.dicom_seg import iter_cases
from livervae.labels import LIVER


def test_dcmqi_folder_with_ct_and_seg(dcmqi):
    (case,) = iter_cases(dcmqi, SourceOptions())
    assert case.case_id == "dcmqi_ct3slice_liver_seg"
    assert case.extra["seg_file"] == "liver_seg.dcm"
    assert sorted(int(v) for v in (case.label.array == LIVER).sum(axis=(0, 1))) == [35220, 35645, 36233]
    assert np.array_equal(case.image.array.shape, (512, 512, 3))
