import torch
from monai.data import DataLoader
from monai.engines import SupervisedTrainer

from livervae.engines.iteration import VAESegmentationIteration, batch_severity, loss_terms
from livervae.losses import SegVAELoss
from livervae.networks import SegResNetVAEWithHeads

SIZE = (32, 32, 16)


def _data(severities):
    torch.manual_seed(0)
    return [
        {"image": torch.rand(1, *SIZE), "label": (torch.rand(1, *SIZE) > 0.7).float(), "severity": torch.tensor(s)}
        for s in severities
    ]


def _trainer(data, severity_weight=1.0):
    torch.manual_seed(0)
    net = SegResNetVAEWithHeads(SIZE, init_filters=8, out_channels=2, severity_head=True)
    loss = SegVAELoss(vae_weight=0.1, severity_weight=severity_weight)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=DataLoader(data, batch_size=2),
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        loss_function=loss,
        iteration_update=VAESegmentationIteration(loss),
    )
    return trainer, net


def test_one_iteration_updates_weights_and_reports_each_term():
    trainer, net = _trainer(_data([0.2, 0.8]))
    head_before = net.severity_head[2].weight.detach().clone()
    trainer.run()
    terms = loss_terms(trainer.state.output)
    assert set(terms) == {"loss", "loss_seg", "loss_vae", "loss_severity"}
    assert terms["loss"] > terms["loss_seg"] > 0
    assert not torch.equal(head_before, net.severity_head[2].weight)


def test_missing_severity_leaves_the_head_untouched():
    trainer, net = _trainer(_data([float("nan"), float("nan")]))
    head_before = net.severity_head[2].weight.detach().clone()
    trainer.run()
    assert loss_terms(trainer.state.output)["loss_severity"] == 0.0
    assert torch.equal(head_before, net.severity_head[2].weight)


def test_batch_severity_defaults_to_nan():
    assert torch.isnan(batch_severity({}, 3, torch.device("cpu"))).all()
    assert batch_severity({"severity": [0.5, 0.25]}, 2, torch.device("cpu")).tolist() == [0.5, 0.25]
