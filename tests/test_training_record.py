import json
import shutil

import pytest
import torch

from livervae.bundle import LIVER_BUNDLE, bundle_root, file_sha256
from livervae.errors import InputError
from livervae.training_record import git_commit, record_training, training_record


def test_training_record_reads_the_run_not_the_caller(trained, tmp_path):
    """The conftest run: 4 phantoms in 2 folds, stage 1 trained for one epoch and validated on fold 0."""
    record = training_record(trained["root"] / "liver", trained["data"], 0, "livervae train ...", "c0ffee")
    datalist = json.loads((trained["data"] / "datalist.json").read_text())["training"]
    assert record["validation_cases"] == sorted(c["case_id"] for c in datalist if c["fold"] == 0)
    assert record["training_cases"] == sorted(c["case_id"] for c in datalist if c["fold"] != 0)
    assert len(record["training_cases"]) + len(record["validation_cases"]) == 4
    assert (record["epochs"], record["max_epochs"], record["best_epoch"]) == (1, 1, 1)
    assert record["key_metric"] == "val_mean_dice"
    # The best value read from TensorBoard is the score the best-model saver kept (a second, independent record).
    resume = torch.load(next((trained["root"] / "liver" / "checkpoints").glob("*.pt")), weights_only=True)
    [(score, _)] = resume["best_model"]["_saved"]
    assert record["best_value"] == pytest.approx(score, abs=1e-4)
    assert record["commit"] == "c0ffee" and record["command"] == "livervae train ..."

    bundle = tmp_path / LIVER_BUNDLE
    shutil.copytree(bundle_root(LIVER_BUNDLE), bundle, ignore=shutil.ignore_patterns("models"))
    path = record_training(str(bundle), record, trained["liver"], allow_external=True)
    stored = json.loads(path.read_text())["training"]
    assert stored["model_sha256"] == file_sha256(trained["liver"]) and stored["epochs"] == 1
    assert stored["model_bytes"] == trained["liver"].stat().st_size


def test_training_record_refuses_a_folder_that_is_no_run(tmp_path, trained):
    with pytest.raises(InputError, match="no validation scalars"):
        training_record(tmp_path, trained["data"], 0, "", "")


def test_git_commit_names_this_checkout():
    from livervae.paths import repo_root

    commit = git_commit(repo_root())
    assert len(commit) == 40 and int(commit, 16) >= 0
    assert git_commit(repo_root() / "no-such-folder") == ""
    # A short hash resolves to the full one (records name commits by 40 hex digits); an unknown one to nothing.
    assert git_commit(repo_root(), commit[:7]) == commit
    assert git_commit(repo_root(), "no-such-revision") == ""
