import math

import pytest
import torch
from ignite.engine import Engine, Events
from torch import nn

from livervae.errors import InputError
from livervae.handlers import AtomicCheckpointSaver, enable_resume, latest_checkpoint


def test_latest_checkpoint_picks_the_highest_epoch(tmp_path):
    assert latest_checkpoint(tmp_path / "none") is None
    for name in ("checkpoint_epoch=2.pt", "checkpoint_epoch=10.pt", "model.pt"):
        (tmp_path / name).write_bytes(b"x")
    assert latest_checkpoint(tmp_path).endswith("checkpoint_epoch=10.pt")


def _run(folder, max_epochs, resume=True, restart_finished=False):
    net = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_epochs)
    epochs_run = []
    rates = []

    def step(engine, batch):
        optimizer.zero_grad()
        loss = net(batch).pow(2).mean()
        loss.backward()
        optimizer.step()
        return loss.item()

    trainer = Engine(step)
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: rates.append(optimizer.param_groups[0]["lr"]))
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: (scheduler.step(), epochs_run.append(e.state.epoch)))
    objects = {"model": net, "optimizer": optimizer, "lr_scheduler": scheduler}
    resumed = enable_resume(trainer, folder, objects, resume, restart_finished=restart_finished)
    trainer.run([torch.ones(1, 2)] * 3, max_epochs=max_epochs)
    scheduler.rates = rates  # the learning rate each epoch started with
    return resumed, epochs_run, scheduler, net


def test_resume_continues_from_the_last_epoch_and_stretches_the_schedule(tmp_path):
    resumed, epochs, _, first_net = _run(tmp_path, 2)
    assert resumed is None and epochs == [1, 2]
    resumed, epochs, scheduler, _ = _run(tmp_path, 4)
    assert resumed.endswith("checkpoint_epoch=2.pt") and epochs == [3, 4]
    # The first run's schedule had reached 0; the stretched one resumes at its own value for epoch 3 of 4.
    assert scheduler.T_max == 4 and scheduler.rates == pytest.approx([0.05, 0.1 * (1 + math.cos(math.pi * 3 / 4)) / 2])
    assert scheduler.get_last_lr()[0] == pytest.approx(0.0)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint_epoch=4.pt"]
    _, epochs, _, _ = _run(tmp_path, 4, resume=False)
    assert epochs == [1, 2, 3, 4]


def test_a_finished_run_stays_finished(tmp_path):
    _run(tmp_path, 3)
    resumed, epochs, _, _ = _run(tmp_path, 3)  # e.g. a finished pre-training stage: skipped
    assert resumed.endswith("checkpoint_epoch=3.pt") and epochs == []
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["checkpoint_epoch=3.pt"]
    with pytest.raises(InputError, match="holds 3 finished epochs, more than this run's max_epochs 1"):
        _run(tmp_path, 1)


def test_a_finished_run_restarts_when_asked(tmp_path):
    _run(tmp_path, 3)
    # A second MONAI Label training request of the same length starts afresh.
    resumed, epochs, _, _ = _run(tmp_path, 3, restart_finished=True)
    assert resumed.endswith("checkpoint_epoch=3.pt") and epochs == [1, 2, 3]
    resumed, epochs, _, _ = _run(tmp_path, 1, restart_finished=True)  # shorter: resuming would fail in MONAI
    assert epochs == [1] and sorted(p.name for p in tmp_path.glob("*.pt")) == ["checkpoint_epoch=1.pt"]


@pytest.mark.slow
def test_training_killed_mid_run_resumes_and_ends_at_max_epochs(tmp_path):
    """SIGKILL a real `livervae train` after its second epoch; the same command resumes and runs epochs 3-4 only."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from livervae.data.formats import SourceOptions
    from livervae.data.preprocess import preprocess

    data = tmp_path / "phantoms"
    preprocess("phantom", None, data, SourceOptions(phantom_n=4, phantom_preset="small"), n_folds=2)
    run = tmp_path / "run"
    command = [os.path.join(os.path.dirname(sys.executable), "livervae"), "train", "--bundle", "liver_ct_segmentation"]
    command += ["--data", str(data), "--preset", "cpu", "--epochs", "4", "--output", str(run)]
    command += ["--set", "val_interval=2", "--set", "cache_rate=0.0", "--set", f'ckpt_dir="{tmp_path / "models"}"']
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 900
    while not (run / "checkpoints" / "checkpoint_epoch=2.pt").exists():
        assert first.poll() is None and time.monotonic() < deadline, "training ended before its second checkpoint"
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL
    state = torch.load(run / "checkpoints" / "checkpoint_epoch=2.pt", weights_only=True)
    assert {"model", "optimizer", "lr_scheduler", "trainer"} <= set(state)
    assert state["trainer"]["iteration"] == 2 * state["trainer"]["epoch_length"]

    second = subprocess.run(command, capture_output=True, text=True, timeout=900)
    log = second.stdout + second.stderr
    assert second.returncode == 0, log[-3000:]
    assert "resuming from" in log and "checkpoint_epoch=2.pt" in log
    assert "Epoch[3] Complete" in log and "Epoch[4] Complete" in log and "Epoch[1] Complete" not in log
    assert latest_checkpoint(run / "checkpoints").endswith("checkpoint_epoch=4.pt")
    assert (tmp_path / "models" / "model.pt").is_file()


def test_best_model_tracking_survives_a_resume(tmp_path):

    def evaluator_with(score: float, saver_state=None):
        net = nn.Linear(2, 1)
        engine = Engine(lambda e, b: None)
        engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.state.metrics.update(dice=score))
        saver = AtomicCheckpointSaver(
            save_dir=str(tmp_path),
            save_dict={"model": net},
            save_key_metric=True,
            key_metric_name="dice",
            key_metric_filename="model.pt",
        )
        if saver_state is not None:
            saver.load_state_dict(saver_state)
        saver.attach(engine)
        engine.run([0], max_epochs=1)
        return saver, net

    saver, first = evaluator_with(0.5)
    state = saver.state_dict()
    assert [priority for priority, _ in next(iter(state.values()))] == [0.5]
    evaluator_with(0.3, state)  # a resumed run whose first validation is worse keeps the earlier best model
    kept = torch.load(tmp_path / "model.pt", weights_only=True)
    assert torch.equal(kept["weight"], first.weight.detach())
    _, better = evaluator_with(0.7, state)
    assert torch.equal(torch.load(tmp_path / "model.pt", weights_only=True)["weight"], better.weight.detach())


def test_a_checkpoint_from_before_new_bookkeeping_state_still_resumes(tmp_path, caplog):
    _run(tmp_path, 2)
    path = tmp_path / "checkpoint_epoch=2.pt"
    saved = torch.load(path, weights_only=True)
    torch.save({key: value for key, value in saved.items() if key != "lr_scheduler"}, path)
    with caplog.at_level("WARNING", logger="livervae.handlers.resume"):
        resumed, epochs, scheduler, _ = _run(tmp_path, 4)
    assert resumed.endswith("checkpoint_epoch=2.pt") and epochs == [3, 4]
    assert "has no saved 'lr_scheduler'" in caplog.text
    torch.save({key: value for key, value in saved.items() if key != "model"}, tmp_path / "checkpoint_epoch=4.pt")
    (tmp_path / "checkpoint_epoch=2.pt").unlink(missing_ok=True)
    with pytest.raises(ValueError, match="Key .model. from x is not found"):  # the weights are never optional
        _run(tmp_path, 6)


def test_the_amp_grad_scaler_is_saved_and_resumed(tmp_path):
    """A resumed AMP run continues with its loss scale, not the initial 65536 (checkpoint docstring's promise)."""

    def run(max_epochs):
        net = nn.Linear(2, 1)
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        trainer = Engine(lambda engine, batch: None)
        trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
        trainer.scaler.scale(torch.ones(1))  # initialises the scale tensor, as the first AMP step does
        seen = []
        trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: seen.append(trainer.scaler.get_scale()))
        # Stands in for overflowing steps: each epoch halves the scale.
        trainer.add_event_handler(
            Events.EPOCH_COMPLETED, lambda e: trainer.scaler.update(new_scale=trainer.scaler.get_scale() / 2)
        )
        enable_resume(trainer, tmp_path, {"model": net, "optimizer": optimizer})
        trainer.run([torch.ones(1, 2)], max_epochs=max_epochs)
        return seen

    assert run(2) == [2.0**16, 2.0**15]
    saved = torch.load(tmp_path / "checkpoint_epoch=2.pt", weights_only=True)
    assert saved["scaler"]["scale"] == 2.0**14
    assert run(3) == [2.0**14]  # resumed at epoch 3 with the saved scale
