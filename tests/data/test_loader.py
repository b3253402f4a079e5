"""CheckedThreadDataLoader: an error in the loading thread stops the loop instead of shortening the epoch."""

from __future__ import annotations

import pytest
from monai.data import Dataset, ThreadDataLoader
from monai.transforms import Lambda

from livervae.data.loader import CheckedThreadDataLoader


def _fail_on_three(x):
    if x == 3:
        raise ValueError("bad item 3")
    return x


def test_an_error_in_the_loading_thread_is_raised():
    dataset = Dataset(list(range(6)), transform=Lambda(_fail_on_three))
    # MONAI's own loader ends the epoch early (items 0-2) and carries on.
    assert [int(b) for b in ThreadDataLoader(dataset, batch_size=1)] == [0, 1, 2]
    seen = []
    with pytest.raises(RuntimeError) as raised:
        for batch in CheckedThreadDataLoader(dataset, batch_size=1):
            seen.append(int(batch))
    assert seen == [0, 1, 2] and "bad item 3" in str(raised.value.__cause__)


def test_a_clean_dataset_loads_every_batch_every_epoch():
    loader = CheckedThreadDataLoader(Dataset(list(range(5))), batch_size=2, repeats=2)
    for _ in range(2):
        assert [b.tolist() for b in loader] == [[0, 1], [0, 1], [2, 3], [2, 3], [4], [4]]
