"""The active-contour ablation: the same cases evaluated with refinement off and on, tabulated side by side."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from livervae.ablation import COLUMNS, load_ablation, markdown_table, run_ablation


def test_ablation_runs_both_settings_and_writes_the_table(trained, tmp_path):
    result = run_ablation(
        {"small phantoms": trained["data"]}, tmp_path, model_path=trained["tumor"], split="val", device="cpu"
    )
    rows = result["rows"]
    assert [(r["dataset"], r["refinement"]) for r in rows] == [("small phantoms", False), ("small phantoms", True)]
    assert all(r["cases"] == 2 for r in rows)
    # Each row's Dice is the one computed here from that setting's written label maps and the references.
    for row in rows:
        folder = tmp_path / "small_phantoms" / ("with_refinement" if row["refinement"] else "without_refinement")
        dice = {"liver": [], "tumor": []}
        for seg in sorted(folder.glob("*_seg.nii.gz")):
            case_id = seg.name[: -len("_seg.nii.gz")]
            predicted = np.asarray(nib.load(str(seg)).dataobj)
            reference = np.asarray(nib.load(str(Path(trained["data"]) / "labels" / f"{case_id}.nii.gz")).dataobj)
            for name, labels in (("liver", (1, 2)), ("tumor", (2,))):
                a, b = np.isin(predicted, labels), np.isin(reference, labels)
                dice[name].append(2 * (a & b).sum() / (a.sum() + b.sum()) if a.sum() + b.sum() else 1.0)
        assert len(dice["liver"]) == row["cases"] == 2
        assert row["liver_dice_mean"] == pytest.approx(np.mean(dice["liver"]), abs=1e-5)
        assert row["tumor_dice_mean"] == pytest.approx(np.mean(dice["tumor"]), abs=1e-5)
        assert set(row) >= {row_key for _, _, row_key, _ in COLUMNS}
    # Refinement never touches the liver outline, so liver Dice is the same with and without it.
    assert rows[1]["liver_dice_mean"] == rows[0]["liver_dice_mean"]
    assert load_ablation(tmp_path / "ablation.json")["rows"] == json.loads(json.dumps(rows))
    table = (tmp_path / "ablation.md").read_text()
    assert table == result["markdown"] == markdown_table(rows) and table.count("\n") == 4
    assert (tmp_path / "small_phantoms" / "with_refinement" / "metrics" / "metrics.csv").is_file()


def test_an_ablation_written_with_the_old_spelling_reads_in_the_new_one(tmp_path):
    (tmp_path / "ablation.json").write_text(json.dumps({"rows": [{"dataset": "d", "tumour_dice_mean": 0.4}]}))
    assert load_ablation(tmp_path / "ablation.json")["rows"] == [{"dataset": "d", "tumor_dice_mean": 0.4}]
