"""The patch VAE's pre-training iteration, for `SupervisedTrainer(iteration_update=...)`.

MONAI's default iteration computes `loss_function(network(image), label)`. Pre-training needs the whole VAE
output (`PatchVAE.vae_forward`) and three targets from the batch (tumour mask, tumour centre, whether the patch
holds tumour). The classifier stage that follows needs nothing special: `PatchVAE.forward` returns the logits,
so a plain `SupervisedTrainer` with cross-entropy trains it.
"""

from __future__ import annotations

from typing import Any

import torch
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.utils.enums import CommonKeys as Keys

from livervae.engines.iteration import optimise, record_loss
from livervae.losses.patch_vae import PatchVAELoss
from livervae.networks.patch_vae import PatchVAE

TARGET_KEYS = ("mask", "coords", "has_tumor")


def unwrap(network: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DataParallel/DistributedDataParallel wrapper (or the network itself)."""
    return getattr(network, "module", network)


class PatchVAEIteration:
    """Callable iteration: `vae_forward`, `PatchVAELoss`, backward, optimiser step (AMP-aware).

    The trainer's output holds `image`, `label` (the tumour mask), `pred` (the reconstruction), `loss` and each
    term as `loss_<term>` for TensorBoard.

    Args:
        loss: the pre-training loss; the trainer's own `loss_function` is not used.
    """

    def __init__(self, loss: PatchVAELoss) -> None:
        self.loss = loss

    def __call__(self, engine: SupervisedTrainer, batchdata: dict[str, Any]) -> dict[str, Any]:
        if batchdata is None:
            raise ValueError("no batch data for this iteration")
        missing = [k for k in TARGET_KEYS if k not in batchdata]
        if missing:
            raise KeyError(f"pre-training batches need {', '.join(missing)} (add PatchTargetsd to the transforms)")
        inputs = batchdata[Keys.IMAGE].to(engine.state.device, non_blocking=engine.non_blocking)
        targets = {k: torch.as_tensor(batchdata[k]).to(engine.state.device) for k in TARGET_KEYS}
        network = unwrap(engine.network)
        if not isinstance(network, PatchVAE):
            raise TypeError(f"pre-training needs a PatchVAE, got {type(network).__name__}")
        engine.state.output = {Keys.IMAGE: inputs, Keys.LABEL: targets["mask"]}
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)

        def compute() -> torch.Tensor:
            out = network.vae_forward(inputs)
            engine.state.output[Keys.PRED] = out.recon
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            return record_loss(engine, self.loss(out, inputs, targets["mask"], targets["coords"], targets["has_tumor"]))

        optimise(engine, compute)
        return engine.state.output
