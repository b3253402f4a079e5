import pytest

from livervae.crossval import format_cv, pooled_auc, run_cv
from livervae.errors import InputError


def test_pooled_auc_reads_every_fold(tmp_path):
    for fold, rows in enumerate([["0.9,1", "0.2,0"], ["0.3,0", "0.35,1"]]):
        (tmp_path / f"f{fold}").mkdir()
        (tmp_path / f"f{fold}" / "patches.csv").write_text("score,label\n" + "\n".join(rows) + "\n")
    # 0.9/1 and 0.35/1 against 0.2/0 and 0.3/0: every positive outranks every negative
    assert pooled_auc([str(tmp_path / "f0"), str(tmp_path / "f1")]) == 1.0
    (tmp_path / "f1" / "patches.csv").write_text("score,label\n0.95,0\n0.35,1\n")
    assert pooled_auc([str(tmp_path / "f0"), str(tmp_path / "f1")]) == pytest.approx(0.5)


def test_format_and_refusals(tmp_path):
    summary = {
        "folds": {
            "0": {"test_patient": "p0", "patches": 10, "tumor_patches": 0, "auc": None, "train_seconds": 1.0},
            "1": {"test_patient": "p1", "patches": 12, "tumor_patches": 3, "auc": 0.875, "train_seconds": 2.5},
        },
        "auc_pooled": 0.8,
    }
    text = format_cv(summary)
    assert "n/a" in text and "0.875" in text and text.endswith("pooled AUC over 2 fold(s): 0.800")
    with pytest.raises(InputError, match="patch bundles only"):
        run_cv("liver_ct_segmentation", tmp_path, tmp_path / "out")
