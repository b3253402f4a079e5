import numpy as np
import pytest
import torch

from livervae.transforms import BinaryClosingd, binary_closing


def test_closing_fills_gaps_smaller_than_the_element():
    mask = torch.zeros(1, 12, 12, 2)
    mask[0, 3:9, 3:9, 0] = 1
    mask[0, 3:9, 6, 0] = 0  # a one-pixel cleft
    mask[0, 5, 5, 0] = 0  # a pinhole
    closed = binary_closing(mask, 3, spatial_dims=2)
    assert torch.equal(closed[0, 3:9, 3:9, 0], torch.ones(6, 6)) and int(closed[..., 0].sum()) == 36
    assert int(closed[..., 1].sum()) == 0  # 2D closing never spreads across slices


def test_dict_transform_keeps_type_and_refuses_even_elements():
    mask = np.zeros((1, 8, 8, 1), dtype=np.uint8)
    mask[0, 2:6, 2:6, 0] = 1
    mask[0, 4, 4, 0] = 0
    out = BinaryClosingd("pred", 3)({"pred": mask})["pred"]
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out[0, 4, 4, 0] == 1
    with pytest.raises(ValueError, match="odd positive integer"):
        binary_closing(torch.as_tensor(mask), 4)
