import collections

import pytest

from livervae.data.folds import assign_folds
from livervae.errors import InputError


def _patients(n_tumor, n_free):
    patients = {f"t{i:02d}": True for i in range(n_tumor)}
    patients.update({f"f{i:02d}": False for i in range(n_free)})
    return patients


def test_deterministic_balanced_and_stratified():
    patients = _patients(17, 6)
    folds = assign_folds(patients, 5, seed=3)
    assert folds == assign_folds(dict(reversed(list(patients.items()))), 5, seed=3)
    sizes = collections.Counter(folds.values())
    assert sorted(sizes) == [0, 1, 2, 3, 4] and max(sizes.values()) - min(sizes.values()) <= 1
    free_per_fold = collections.Counter(folds[p] for p, tumour in patients.items() if not tumour)
    assert max(free_per_fold.values()) - min(free_per_fold.get(k, 0) for k in range(5)) <= 1


def test_seed_changes_the_assignment():
    patients = _patients(20, 0)
    assert assign_folds(patients, 5, seed=0) != assign_folds(patients, 5, seed=1)


def test_fewer_patients_than_folds():
    assert sorted(assign_folds(_patients(2, 1), 5, seed=0).values()) == [0, 1, 2]


def test_invalid_fold_count():
    with pytest.raises(InputError, match="at least 1"):
        assign_folds(_patients(2, 0), 0, seed=0)
