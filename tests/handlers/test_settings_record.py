import pytest
import torch

from livervae.errors import InputError
from livervae.handlers import SettingsRecord, check_settings


def test_settings_are_checked(tmp_path):
    torch.save({"model": {}, "settings": SettingsRecord(pixdim=[4.0, 4.0, 4.0]).state_dict()}, tmp_path / "m.pt")
    check_settings(tmp_path / "m.pt", {"pixdim": [4, 4, 4], "not_recorded": 1})
    with pytest.raises(InputError, match=r"was trained with pixdim=\[4.0, 4.0, 4.0\], but this bundle expects"):
        check_settings(tmp_path / "m.pt", {"pixdim": [3.0, 3.0, 3.0]})
    with pytest.raises(InputError, match="train the liver bundle first"):
        check_settings(tmp_path / "nope.pt", {})
