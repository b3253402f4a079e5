import pytest
import torch
from ignite.engine import Engine
from torch import nn

from livervae.handlers import AtomicCheckpointSaver


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):

    net = nn.Linear(2, 1)
    trainer = Engine(lambda engine, batch: None)
    AtomicCheckpointSaver(
        save_dir=str(tmp_path), save_dict={"model": net}, save_final=True, final_filename="model.pt"
    ).attach(trainer)
    trainer.run([0], max_epochs=1)
    good = (tmp_path / "model.pt").read_bytes()
    assert torch.load(tmp_path / "model.pt", weights_only=True).keys() == {"weight", "bias"}

    def dies_half_way(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(OSError):
        trainer.run([0], max_epochs=2)
    assert (tmp_path / "model.pt").read_bytes() == good  # the complete file survives a failed save
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # and no temporary file is left


def test_a_rolling_checkpoint_is_removed_only_after_its_successor_is_complete(tmp_path, monkeypatch):

    trainer = Engine(lambda engine, batch: None)
    saver = AtomicCheckpointSaver(
        save_dir=str(tmp_path), save_dict={"model": nn.Linear(2, 1)}, save_interval=1, n_saved=1
    )
    saver.attach(trainer)
    trainer.run([0], max_epochs=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_epoch=2.pt"]
    real_save = torch.save

    def fails(obj, f, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", fails)
    with pytest.raises(OSError):
        trainer.run([0], max_epochs=3)
    # Ignite asked for epoch 2's removal before writing epoch 3; it was deferred, so epoch 2 is still there.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_epoch=2.pt"]
    monkeypatch.setattr(torch, "save", real_save)
