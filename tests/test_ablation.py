"""The active-contour ablation: the same cases evaluated with refinement off and on, tabulated side by side."""

from __future__ import annotations

import json
import math

from livervae.ablation import COLUMNS, load_ablation, markdown_table, run_ablation


def test_ablation_runs_both_settings_and_writes_the_table(trained, tmp_path):
    result = run_ablation(
        {"small phantoms": trained["data"]}, tmp_path, model_path=trained["tumour"], split="val", device="cpu"
    )
    rows = result["rows"]
    assert [(r["dataset"], r["refinement"]) for r in rows] == [("small phantoms", False), ("small phantoms", True)]
    assert all(r["cases"] == 2 for r in rows)
    for row in rows:
        for _, key, _ in COLUMNS:
            assert math.isnan(row[key]) or (
                row[key] >= 0 and (not key.endswith(("dice_mean", "recall")) or row[key] <= 1)
            )
    # Refinement never touches the liver outline, so liver Dice is the same with and without it.
    assert rows[1]["liver_dice_mean"] == rows[0]["liver_dice_mean"]
    assert load_ablation(tmp_path / "ablation.json")["rows"] == json.loads(json.dumps(rows))
    table = (tmp_path / "ablation.md").read_text()
    assert table == result["markdown"] == markdown_table(rows) and table.count("\n") == 4
    assert (tmp_path / "small_phantoms" / "with_refinement" / "metrics" / "metrics.csv").is_file()
