import json

import pytest

from livervae.data.datalist import evaluation_inputs, inference_inputs, load_fold
from livervae.data.formats import SourceOptions
from livervae.data.preprocess import preprocess
from livervae.errors import InputError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "phantoms"
    preprocess("phantom", None, out, SourceOptions(phantom_n=4, phantom_preset="small"), n_folds=2)
    return out


def test_folds_split_train_and_validation(dataset):
    train, val = load_fold(dataset, 0, "train"), load_fold(dataset, 0, "val")
    assert len(train) == len(val) == 2 and not {e["case_id"] for e in train} & {e["case_id"] for e in val}
    assert all(e["image"].startswith(str(dataset)) and "severity" in e for e in train)
    assert len(load_fold(dataset, 0, "all")) == 4 and load_fold(dataset, 0, "test") == []
    with pytest.raises(InputError, match="fold 7 does not exist"):
        load_fold(dataset, 7, "val")


def test_missing_files_are_named(dataset, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    datalist = json.loads((dataset / "datalist.json").read_text())
    (broken / "datalist.json").write_text(json.dumps(datalist))
    with pytest.raises(InputError, match="points to a missing file"):
        load_fold(broken, 0, "train")
    with pytest.raises(InputError, match="no datalist.json"):
        load_fold(tmp_path, 0)


def test_inference_and_evaluation_inputs(dataset, tmp_path):
    items = inference_inputs(dataset)
    assert len(items) == 4 and items[0]["image"] == items[0]["source_file"]
    assert inference_inputs(dataset / "images" / "phantom_000.nii.gz")[0]["source_file"].endswith("phantom_000.nii.gz")
    assert set(evaluation_inputs(dataset, 0)[0]) == {"image", "source_file", "reference_file"}
    with pytest.raises(InputError, match="no NIfTI"):
        inference_inputs(tmp_path)


def test_empty_validation_falls_back_to_the_training_cases(caplog):
    from monai.data import Dataset

    from livervae.data.datalist import validation_or_training

    training = [{"image": 1.0}, {"image": 2.0}]
    real = Dataset([{"image": 3.0}])
    assert validation_or_training(real, training, None) is real
    with caplog.at_level("WARNING"):
        fallback = validation_or_training(Dataset([]), training, lambda d: {"image": d["image"] * 10})
    assert [item["image"] for item in fallback] == [10.0, 20.0]
    assert "validating on the 2 training case(s)" in caplog.text
