"""The training iteration of the SegResNetVAE models, for `SupervisedTrainer(iteration_update=...)`.

MONAI's default iteration computes `loss_function(pred, label)`. The VAE models need more: the VAE loss the
network returns in training mode, and the per-patient severity indicator carried in the batch (not in the
label). This iteration runs the network, combines the terms with `SegVAELoss`, and steps the optimiser with
AMP when the trainer has it on. It writes the usual `image/label/pred/loss` keys, so MONAI's handlers and
metrics work unchanged, plus each loss term as `loss_<term>` for logging.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.utils.enums import CommonKeys as Keys

from livervae.losses.seg_vae import SegVAELoss
from livervae.networks.segresnet_vae import SegResNetVAEOutput

SEVERITY_KEY = "severity"


def batch_severity(batchdata: dict[str, Any], batch_size: int, device: torch.device) -> torch.Tensor:
    """The batch's severity indicators as a float tensor, NaN where missing or absent."""
    values = batchdata.get(SEVERITY_KEY) if isinstance(batchdata, dict) else None
    if values is None:
        return torch.full((batch_size,), float("nan"), device=device)
    tensor = torch.as_tensor(values, dtype=torch.float32).reshape(-1)
    return tensor.to(device)


def record_loss(engine: SupervisedTrainer, terms: dict[str, torch.Tensor]) -> torch.Tensor:
    """Put a loss's total and each other term (as `loss_<term>`, for TensorBoard) into the trainer's output, fire
    MONAI's LOSS_COMPLETED, and return the total."""
    engine.state.output[Keys.LOSS] = terms["loss"]
    for name, value in terms.items():
        if name != "loss":
            engine.state.output[f"loss_{name}"] = float(value.detach())
    engine.fire_event(IterationEvents.LOSS_COMPLETED)
    return terms["loss"]


def optimise(engine: SupervisedTrainer, compute: Callable[[], torch.Tensor]) -> None:
    """Backward and optimiser step for a loss from `compute()`, with AMP (autocast + grad scaler) when the trainer
    has it on, firing MONAI's iteration events as `SupervisedTrainer` does."""
    if engine.amp and engine.scaler is not None:
        with torch.autocast("cuda", **engine.amp_kwargs):
            loss = compute()
        engine.scaler.scale(loss).backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        engine.scaler.step(engine.optimizer)
        engine.scaler.update()
    else:
        loss = compute()
        loss.backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        engine.optimizer.step()
    engine.fire_event(IterationEvents.MODEL_COMPLETED)


class VAESegmentationIteration:
    """Callable iteration: forward in training mode, `SegVAELoss`, backward, optimiser step (AMP-aware).

    Args:
        loss: the combined loss; the trainer's own `loss_function` is not used.
    """

    def __init__(self, loss: SegVAELoss) -> None:
        self.loss = loss

    def __call__(self, engine: SupervisedTrainer, batchdata: dict[str, Any]) -> dict[str, Any]:
        if batchdata is None:
            raise ValueError("no batch data for this iteration")
        inputs, targets = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking)[:2]
        severity = batch_severity(batchdata, inputs.shape[0], inputs.device)
        engine.state.output = {Keys.IMAGE: inputs, Keys.LABEL: targets}
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)

        def compute() -> torch.Tensor:
            out = engine.network(inputs)
            if not isinstance(out, SegResNetVAEOutput):
                raise TypeError("the network must return SegResNetVAEOutput in training mode")
            engine.state.output[Keys.PRED] = out.seg
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            return record_loss(engine, self.loss(out.seg, targets, out.vae_loss, out.severity_logit, severity))

        optimise(engine, compute)
        return engine.state.output


def loss_terms(output: Any) -> dict[str, float]:
    """Pick the total loss and each `loss_<term>` from a (decollated) trainer output, for TensorBoard."""
    first = output[0] if isinstance(output, list) else output
    return {key: float(value) for key, value in first.items() if key == Keys.LOSS or key.startswith("loss_")}
