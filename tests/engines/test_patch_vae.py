import pytest
import torch
from ignite.engine import Events
from monai.data import DataLoader
from monai.engines import SupervisedTrainer

from livervae.engines.iteration import loss_terms
from livervae.engines.patch_vae import PatchVAEIteration
from livervae.handlers import enable_resume
from livervae.losses import PatchVAELoss
from livervae.networks import PatchVAE
from livervae.transforms import PatchTargetsd


def _patches(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        image = torch.rand(1, 8, 8, generator=g) * 0.2 + 0.5
        mask = torch.zeros(1, 8, 8)
        if i % 2:
            mask[0, 2:6, 2:6] = 1
            image = image - 0.3 * mask
        items.append(PatchTargetsd("mask")({"image": image, "mask": mask}))
    return items


def _trainer(net, epochs, loss):
    optimizer = torch.optim.Adam(net.vae_parameters(), 1e-2)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=epochs,
        train_data_loader=DataLoader(_patches(), batch_size=8, shuffle=False),
        network=net,
        optimizer=optimizer,
        loss_function=loss,
        iteration_update=PatchVAEIteration(loss),
    )
    return trainer, optimizer


def test_pre_training_lowers_the_loss_and_logs_each_term():
    torch.manual_seed(0)
    net, loss = PatchVAE(patch_size=8, latent_dim=8), PatchVAELoss()
    trainer, _ = _trainer(net, 1, loss)
    losses = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(loss_terms(e.state.output)["loss"]))
    trainer.run()
    first = losses[0]
    trainer.state.max_epochs = 6
    trainer.run()
    assert losses[-1] < 0.7 * first
    assert set(loss_terms(trainer.state.output)) == {"loss", "loss_recon", "loss_kl", "loss_mask", "loss_coords"}


def test_pre_training_resumes_after_the_last_finished_epoch(tmp_path):
    torch.manual_seed(0)
    net, loss = PatchVAE(patch_size=8, latent_dim=8), PatchVAELoss()
    trainer, optimizer = _trainer(net, 2, loss)
    assert enable_resume(trainer, tmp_path, {"model": net, "optimizer": optimizer}) is None
    trainer.run()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    fresh = PatchVAE(patch_size=8, latent_dim=8)
    trainer, optimizer = _trainer(fresh, 3, loss)
    epochs = []
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: epochs.append(e.state.epoch))
    resumed = enable_resume(trainer, tmp_path, {"model": fresh, "optimizer": optimizer})
    trainer.add_event_handler(
        Events.STARTED, lambda e: [torch.testing.assert_close(v, state[k]) for k, v in fresh.state_dict().items()]
    )
    trainer.run()
    assert resumed.endswith("checkpoint_epoch=2.pt") and epochs == [3]


def test_pre_training_needs_the_targets_and_a_patch_vae():
    net, loss = PatchVAE(patch_size=8), PatchVAELoss()
    trainer, _ = _trainer(net, 1, loss)
    with pytest.raises(KeyError, match="add PatchTargetsd"):
        PatchVAEIteration(loss)(trainer, {"image": torch.rand(2, 1, 8, 8), "mask": torch.zeros(2, 1, 8, 8)})
    trainer.network = torch.nn.Linear(2, 2)
    batch = {k: torch.stack([p[k] for p in _patches(2)]) for k in ("image", "mask", "coords", "has_tumor")}
    with pytest.raises(TypeError, match="needs a PatchVAE"):
        PatchVAEIteration(loss)(trainer, batch)
