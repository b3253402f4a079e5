"""File formats: NIfTI, DICOM CT series, DICOM-SEG, and atomic writes."""
