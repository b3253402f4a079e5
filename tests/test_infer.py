"""`livervae infer` writes the label map with its measurements: JSON and CSV always, a DICOM SR beside a DICOM-SEG,
the uncertainty maps and case quality on request, a short table on the command line, and nothing at all when one
of the outputs cannot be written.

The real 3D-IRCADb #17 series goes through the shipped two-stage model once (the module's `real_run`, through the
command line, with `--uncertainty`); the other tests reuse that prediction (`Replay`) so they cost file work only.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import errno
import io
import json
from pathlib import Path
from types import SimpleNamespace

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes
from scipy import ndimage

from livervae import infer as infer_module
from livervae.cli import main
from livervae.errors import InputError, OutputError
from livervae.infer import infer, read_input, write_prediction
from livervae.io.atomic import atomic_path
from livervae.io.dicom_seg import read_dicom_seg_labels
from livervae.io.dicom_series import read_dicom_series
from livervae.io.nifti import load_nifti
from livervae.io.volume import Volume
from livervae.labels import LIVER, TUMOR


class Replay:
    """A predictor that gives back a recorded label map (on the grid of the image it is asked about)."""

    def __init__(self, predictor, label: np.ndarray) -> None:
        self._predictor, self.label = predictor, label

    def __getattr__(self, name: str):
        return getattr(self._predictor, name)

    def predict_volume(self, image_file: Path, image: Volume) -> Volume:
        assert image.shape == self.label.shape
        return Volume(self.label.copy(), image.affine.copy(), str(image_file))


class Recording(Replay):
    """The real predictor, keeping the label map it predicts."""

    def __init__(self, predictor) -> None:
        super().__init__(predictor, np.zeros(0))

    def predict_volume(self, image_file: Path, image: Volume) -> Volume:
        label = self._predictor.predict_volume(image_file, image)
        self.label = label.array.copy()
        return label

    def predict_with_uncertainty(self, image_file: Path):
        result = self._predictor.predict_with_uncertainty(image_file)
        self.label = result.label.copy()
        return result


@pytest.fixture(scope="module")
def real_run(real_case, tmp_path_factory):
    """`livervae infer -i <real DICOM series> -o <out>/seg.dcm` with the shipped model: what it printed and wrote."""
    out = tmp_path_factory.mktemp("infer") / "out"
    made: list[Recording] = []
    real_predictor = infer_module.BundlePredictor

    def recording(*args, **kwargs):
        made.append(Recording(real_predictor(*args, **kwargs)))
        return made[-1]

    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setattr(infer_module, "BundlePredictor", recording)
        command = ["infer", "-i", str(real_case / "PATIENT_DICOM"), "-o", str(out / "seg.dcm"), "--device", "cpu"]
        status = main([*command, "--uncertainty", str(out / "seg_uncertainty.nii.gz")])
    assert status == 0 and len(made) == 1
    series = read_dicom_series(real_case / "PATIENT_DICOM")
    return SimpleNamespace(
        out=out,
        printed=printed.getvalue(),
        series=series,
        replay=Replay(made[0], made[0].label),
        label=Volume(made[0].label, series.volume.affine.copy(), "label"),
    )


def _voxel_ml(series) -> float:
    """Voxel volume from the DICOM geometry: pixel spacing times the distance between slice positions."""
    row_spacing, column_spacing = (float(v) for v in pydicom.dcmread(series.files[0]).PixelSpacing)
    step = float(np.median(np.linalg.norm(np.diff(series.positions, axis=0), axis=1)))
    return row_spacing * column_spacing * step / 1000.0


def _volume_ml(group) -> float:
    (volume,) = group.get_measurements(name=codes.SCT.Volume)
    assert volume.unit.value == "ml"
    return volume.value


def test_cli_on_a_dicom_series_writes_seg_sr_and_measurements_and_prints_a_table(real_run):
    out = real_run.out
    written = [
        "seg.csv",
        "seg.dcm",
        "seg.json",
        "seg.png",
        "seg_probability.dcm",
        "seg_sr.dcm",
        "seg_uncertainty.nii.gz",
        "seg_uncertainty.png",
    ]
    assert sorted(p.name for p in out.iterdir()) == written
    lines = real_run.printed.strip().splitlines()
    assert lines[0].startswith("Liver ") and lines[1].startswith("Tumour ") and lines[2].startswith("Lesions ")
    lesions = int(lines[2].split()[1])
    assert len(lines) == 3 + (1 + min(lesions, 10) + (lesions > 10) if lesions else 0) + 2  # table, quality, outputs
    assert lines[-2].startswith("quality ")
    where = lines[-1]
    for name in written:
        assert str(out / name) in where
    assert "lesion(s)" not in real_run.printed  # not the old one-liner


def test_sr_volume_and_lesion_count_equal_an_independent_count_on_the_written_seg(real_run):
    series, out = real_run.series, real_run.out
    label = read_dicom_seg_labels(out / "seg.dcm", series).array
    voxel_ml = _voxel_ml(series)
    liver_ml = np.count_nonzero(label >= LIVER) * voxel_ml
    tumour_ml = np.count_nonzero(label == TUMOR) * voxel_ml
    _, lesions = ndimage.label(label == TUMOR, structure=np.ones((3, 3, 3), dtype=bool))
    assert liver_ml > 1000 and lesions >= 1  # the shipped model finds the liver and a lesion of #17

    sr = hd.sr.srread(out / "seg_sr.dcm")
    groups = {group.tracking_identifier: group for group in sr.content.get_volumetric_roi_measurement_groups()}
    assert _volume_ml(groups["Liver"]) == pytest.approx(liver_ml, rel=1e-6)
    assert _volume_ml(groups["Liver tumour"]) == pytest.approx(tumour_ml, rel=1e-6)
    assert sorted(name for name in groups if name.startswith("Lesion ")) == [
        f"Lesion {k}" for k in range(1, lesions + 1)
    ]
    # The SR references the SEG written beside it, and the source series.
    seg = pydicom.dcmread(out / "seg.dcm", stop_before_pixels=True)
    reference = groups["Liver"].referenced_segment
    assert reference[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == seg.SOPInstanceUID
    assert reference[1].value == series.series_uid
    assert sr.StudyInstanceUID == seg.StudyInstanceUID == series.study_uid

    # The JSON and CSV hold the same case.
    document = json.loads((out / "seg.json").read_text())
    assert document["liver_ml"] == pytest.approx(liver_ml, abs=0.01) and document["lesion_count"] == lesions
    assert document["source"] == "PATIENT_DICOM"
    with open(out / "seg.csv", newline="") as handle:
        assert [int(row["number"]) for row in csv.DictReader(handle)] == list(range(1, lesions + 1))


def test_nifti_in_gives_measurements_and_no_sr(real_run, real_case, tmp_path):
    summary = infer(
        real_case / "nifti" / "ct.nii.gz", tmp_path / "pred.nii.gz", predictor=real_run.replay, overlay=False
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.csv", "pred.json", "pred.nii.gz"]
    assert "sr" not in summary and "overlay" not in summary
    assert summary["measurements_json"] == str(tmp_path / "pred.json")
    assert summary["measurements_csv"] == str(tmp_path / "pred.csv")
    label = load_nifti(tmp_path / "pred.nii.gz").array
    assert np.array_equal(label, real_run.label.array)
    # The summary's numbers are the measurements' (summarise_case's keys, taken from them without labelling again).
    document = json.loads((tmp_path / "pred.json").read_text())
    for key in ("liver_ml", "tumor_ml", "tumor_burden_percent", "lesion_count", "liver_voxels", "tumor_voxels"):
        assert summary[key] == document[key], key
    counts = np.bincount(label.ravel(), minlength=3)
    assert summary["label_voxels"] == {"background": counts[0], "liver": counts[1], "tumor": counts[2]}
    assert summary["lesion_volumes_ml"] == [lesion["volume_ml"] for lesion in document["lesions"]]
    assert summary["measurements"].lesion_count == summary["lesion_count"] == len(summary["lesion_volumes_ml"])


def _fail_writing(target: Path):
    """A writer that fails as a full disk does while writing `target` (through `atomic_path`, as the real ones)."""

    def write(*args, **kwargs):
        with atomic_path(target):
            raise OSError(errno.ENOSPC, "No space left on device")

    return write


def _break(case: str, out: Path, patch: pytest.MonkeyPatch) -> tuple[type[Exception], Path]:
    """Make one step of `write_prediction` fail; return the error expected and the file it names."""
    if case == "sr content":  # measurements the SR cannot describe: refused before anything is written
        measure = infer_module.measure_case

        def miscounted(*args):
            measurements = measure(*args)
            return dataclasses.replace(measurements, lesion_count=measurements.lesion_count + 1)

        patch.setattr(infer_module, "measure_case", miscounted)
        return InputError, out / "seg_sr.dcm"
    if case == "sr write":  # after the SEG is in place
        save, fail = infer_module.save_dicom, _fail_writing(out / "seg_sr.dcm")
        patch.setattr(
            infer_module, "save_dicom", lambda ds, path: (fail if path.name.endswith("_sr.dcm") else save)(ds, path)
        )
        return OutputError, out / "seg_sr.dcm"
    if case in ("measurements", "nifti measurements"):
        patch.setattr(infer_module, "write_measurements", _fail_writing(out / "seg.json"))
        return OutputError, out / "seg.json"
    assert case == "overlay"  # the last file: everything else is in place by then
    patch.setattr(infer_module, "save_overlay_png", _fail_writing(out / "seg.png"))
    return OutputError, out / "seg.png"


@pytest.mark.parametrize("case", ["sr content", "sr write", "measurements", "overlay", "nifti measurements"])
def test_a_failing_output_leaves_nothing_behind_and_names_the_file(real_run, real_case, tmp_path, monkeypatch, case):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("not ours")
    dicom = not case.startswith("nifti")
    output = out / ("seg.dcm" if dicom else "seg.nii.gz")
    if case == "sr content":
        output.write_bytes(b"an earlier SEG")  # refused before writing: an earlier output stays as it was
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    error, named = _break(case, out, monkeypatch)
    source = real_case / "PATIENT_DICOM" if dicom else real_case / "nifti" / "ct.nii.gz"
    image, series = (real_run.series.volume, real_run.series) if dicom else read_input(source)
    label = Volume(real_run.label.array, image.affine.copy(), "label")
    with pytest.raises(error, match=str(named)):
        write_prediction(label, image, series, source, output, real_run.replay, True, 0.0)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no output, no temporary file


def test_uncertainty_maps_are_on_the_series_grid_and_hold_the_class_entropy(real_run):
    """The 4D map: P(liver), P(tumour), uncertainty on the DICOM series' own grid, consistent with each other and
    with the label map; the uncertainty channel is the normalised entropy of the three classes they imply."""
    import nibabel as nib

    img = nib.load(str(real_run.out / "seg_uncertainty.nii.gz"))
    series = real_run.series.volume
    assert img.shape == (*series.shape, 3)
    np.testing.assert_allclose(img.affine, series.affine, atol=1e-4)
    liver_p, tumour_p, uncertainty = np.moveaxis(img.get_fdata(dtype=np.float32), -1, 0)
    step = 1.0 / 255.0
    assert liver_p.min() >= 0 and liver_p.max() <= 1 + 1e-6 and (liver_p >= tumour_p - step).all()
    classes = np.clip(np.stack([1 - liver_p, liver_p - tumour_p, tumour_p]), 1e-7, 1.0)
    entropy = -(classes * np.log(classes)).sum(0) / np.log(3)
    inside = real_run.label.array >= LIVER
    # 8-bit channels: compare where the quantisation of the probabilities moves the entropy little
    steady = (classes > 0.02).all(0) | (classes < 1e-6).any(0)
    assert np.abs(entropy - uncertainty)[steady].mean() < 0.01
    assert (liver_p[inside] > 0.5).mean() > 0.95 and (liver_p[~inside] < 0.5).mean() > 0.99
    assert uncertainty[inside].mean() < uncertainty[~inside & (liver_p > 0.05)].mean()


def test_case_quality_of_the_real_ct_tracks_its_true_dice_and_is_in_the_measurements_json(real_run):
    from livervae.bundle import TUMOR_BUNDLE, recorded_metrics
    from livervae.paths import repo_root

    quality = json.loads((real_run.out / "seg.json").read_text())["quality"]
    assert quality["score"] == pytest.approx(
        min(quality["liver_expected_dice"], quality["tumor_expected_dice"]), abs=1e-4
    )
    metadata = json.loads((repo_root() / "bundles" / TUMOR_BUNDLE / "configs" / "metadata.json").read_text())
    true = recorded_metrics(metadata, "real_ct_3dircadb1_17")
    # The shipped weights (trained on synthetic CT from real anatomy) segment the real CT well (liver 0.930,
    # tumour 0.646): the self-estimate must say so, not cry wolf, and the stage-1 VAE must not call it foreign.
    assert quality["liver_expected_dice"] == pytest.approx(true["liver_dice_mean"], abs=0.05)
    assert quality["tumor_expected_dice"] == pytest.approx(true["tumor_dice_mean"], abs=0.1)
    assert quality["reconstruction_ratio"] < 1.5
    assert not quality["needs_review"] and not quality["reasons"]
    assert f"quality {quality['score']:.2f}" in real_run.printed and "no review flag" in real_run.printed


@pytest.mark.parametrize("name", ["maps.png", "seg.json", "seg.nii.gz"])
def test_a_bad_uncertainty_name_is_refused_before_the_model_runs(real_case, tmp_path, capsys, name):
    out = tmp_path / "out"
    out.mkdir()
    source = real_case / "nifti" / "ct.nii.gz"
    status = main(["infer", "-i", str(source), "-o", str(out / "seg.nii.gz"), "--uncertainty", str(out / name)])
    assert status == 2 and "uncertainty map" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_uncertainty_without_a_name_goes_beside_the_output_and_batch_takes_no_name(tmp_path, capsys):
    from livervae.data.phantom import PhantomConfig, generate_case
    from livervae.infer import uncertainty_path_for
    from livervae.io.nifti import save_nifti

    assert uncertainty_path_for(Path("a/seg.dcm")) == Path("a/seg_uncertainty.nii.gz")
    assert uncertainty_path_for(Path("a/case.nii")) == Path("a/case_uncertainty.nii.gz")
    image, _, _ = generate_case(0, 0, PhantomConfig.small())
    source = save_nifti(image, tmp_path / "in" / "ct.nii.gz")
    assert main(["infer", "-i", str(source), "-o", str(tmp_path / "out" / "ct.nii.gz"), "--uncertainty"]) == 0
    assert (tmp_path / "out" / "ct_uncertainty.nii.gz").is_file() and "quality " in capsys.readouterr().out
    status = main(["infer", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "batch"), "--uncertainty", "x.nii.gz"])
    assert status == 2 and "without a file name" in capsys.readouterr().err
    assert not (tmp_path / "batch").exists()


def test_probability_seg_holds_the_maps_per_source_slice(real_run):
    """DICOM in, DICOM back: the FRACTIONAL SEG beside the label SEG references the series and, re-read with
    highdicom, gives P(liver) and P(tumour) on every source slice as the NIfTI maps hold them (8-bit both)."""
    import nibabel as nib

    seg = hd.seg.segread(real_run.out / "seg_probability.dcm")
    series = real_run.series
    assert seg.SegmentationType == "FRACTIONAL" and seg.SegmentationFractionalType == "PROBABILITY"
    assert seg.number_of_segments == 2 and seg.StudyInstanceUID == series.study_uid
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series.series_uid
    maps = np.moveaxis(nib.load(str(real_run.out / "seg_uncertainty.nii.gz")).get_fdata(dtype=np.float32), -1, 0)
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=series.sop_instance_uids, segment_numbers=[1, 2], rescale_fractional=True
    )
    assert pixels.shape == (len(series.files), *maps.shape[2:0:-1], 2)
    for channel in (0, 1):
        on_slices = np.asarray(pixels[..., channel], dtype=np.float32).transpose(2, 1, 0)
        np.testing.assert_allclose(on_slices, maps[channel], atol=1.0 / 255 + 1e-6)
