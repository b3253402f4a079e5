from ignite.engine import Engine, Events

from livervae.handlers import enable_early_stopping


def test_early_stopping_stops_the_trainer_after_patience_validations():

    scores = iter([0.5, 0.6, 0.55, 0.58, 0.59, 0.9])
    trainer = Engine(lambda engine, batch: None)
    evaluator = Engine(lambda engine, batch: None)
    evaluator.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.state.metrics.update(dice=next(scores)))
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: evaluator.run([0]))
    assert enable_early_stopping(evaluator, trainer, 0, "dice") is None
    enable_early_stopping(evaluator, trainer, 2, "dice")
    trainer.run([0], max_epochs=6)
    assert trainer.state.epoch == 4  # best at epoch 2, no improvement at 3 and 4
