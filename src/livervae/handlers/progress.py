"""A per-epoch progress bar with the running loss, behind MONAI's `attach(engine)` handler interface."""

from __future__ import annotations

from ignite.engine import Engine
from ignite.handlers import ProgressBar as IgniteProgressBar

from livervae.engines.iteration import loss_terms


class ProgressBar:
    """A tqdm progress bar per epoch showing the running loss (Ignite's bar behind MONAI's handler interface).

    Args:
        persist: keep each epoch's finished bar on screen.
    """

    def __init__(self, persist: bool = False) -> None:
        self.bar = IgniteProgressBar(persist=persist)

    def attach(self, engine: Engine) -> None:
        """Attach the bar to `engine`."""
        self.bar.attach(engine, output_transform=lambda output: {"loss": loss_terms(output)["loss"]})
