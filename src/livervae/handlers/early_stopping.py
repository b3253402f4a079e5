"""Early stopping on a validation metric, attached once both engines exist."""

from __future__ import annotations

from ignite.engine import Engine
from monai.handlers import EarlyStopHandler


def enable_early_stopping(evaluator: Engine, trainer: Engine, patience: int, metric: str) -> EarlyStopHandler | None:
    """Stop `trainer` when the evaluator's `metric` has not improved for `patience` validations (0 = never).

    Attached after both engines exist, for the same reason as `enable_resume`.
    """
    if patience <= 0:
        return None
    handler = EarlyStopHandler(
        patience=patience, score_function=lambda engine: engine.state.metrics[metric], trainer=trainer
    )
    handler.attach(evaluator)
    return handler
