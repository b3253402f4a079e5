import pytest
import torch

from livervae.errors import InputError
from livervae.transforms import LiverReferencedIntensityd


def test_liver_median_goes_to_the_reference():
    image = torch.full((1, 4, 4, 1), -500.0)
    label = torch.zeros(1, 4, 4, 1)
    label[0, 0, :3, 0] = 1
    label[0, 1, 0, 0] = 2  # tumour counts as liver
    image[0, 0, :3, 0] = torch.tensor([130.0, 132.0, 128.0])
    image[0, 1, 0, 0] = 60.0  # median of 60, 128, 130, 132: torch takes the lower middle value, 128
    out = LiverReferencedIntensityd("image", reference_hu=100.0)({"image": image, "label": label})
    assert float(out["image"][0, 0, 0, 0]) == pytest.approx(102.0) and float(out["image"][0, 3, 3, 0]) == -528.0


def test_refuses_an_empty_liver_or_another_grid():
    with pytest.raises(InputError, match="empty liver"):
        LiverReferencedIntensityd("image")({"image": torch.zeros(1, 4, 4, 2), "label": torch.zeros(1, 4, 4, 2)})
    with pytest.raises(InputError, match="not on the image's grid"):
        LiverReferencedIntensityd("image")({"image": torch.zeros(1, 4, 4, 2), "label": torch.ones(1, 4, 4, 3)})
