"""An epoch is exactly ceil(n / batch_size) optimizer steps, on every path a user can take.

Keras runs whole `steps_per_execution` chunks; with an endless dataset and
`steps_per_epoch`, the last chunk of an epoch overran into the next epoch's batches
(448 steps for 422 batches). These tests count what really ran, with the optimizer's
iteration count, on sizes that are not multiples of the batch or of the chunk.
"""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from relunet import TrainConfig, data
from relunet.config import ModelConfig, OptimConfig
from relunet.data import PipelineConfig as P
from relunet.training.callbacks import StepProgress
from relunet.training.model import build_model
from relunet.training.train import train


def _arrays(n, seed=0):
    rng = np.random.default_rng(seed)
    return data.Arrays(
        tf.constant(rng.integers(0, 256, (n, 28, 28, 1), np.uint8)),
        tf.constant(rng.integers(0, 10, n, np.int32)),
    )


def _steps(model):
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


# (examples, batch size, steps_per_execution, validation, XLA): sizes that are not
# multiples of the batch, epochs that are shorter, equal to and longer than a chunk. XLA
# (the command line's default, tested end to end below) compiles each new model for 2-3 s
# here; the step count does not depend on it, so two of the 64-step chunks run under it.
GRID = [
    (1000, 128, 1, False, False),
    (1000, 128, 4, True, False),
    (1000, 128, 64, False, False),  # 8 steps an epoch, a chunk of 64
    (1237, 100, 64, True, False),  # 13 steps, last batch of 37
    (6000, 128, 64, False, True),  # 47 steps: the train[:6000]
    (8321, 64, 64, True, True),  # 131 steps: two whole chunks and 3
    (2049, 32, 4, False, False),  # 65 steps, last batch of 1
]


@pytest.mark.parametrize("n, batch_size, chunk, validate, xla", GRID)
def test_fit_trains_exactly_one_pass_per_epoch(n, batch_size, chunk, validate, xla):
    arrays, epochs = _arrays(n), 3
    steps = math.ceil(n / batch_size)
    model = build_model(
        ModelConfig(width=16),
        OptimConfig(jit_compile="on" if xla else "off", steps_per_execution=chunk),
    )
    seen = []

    class CountSteps(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(_steps(self.model))

    val = data.evaluation_pipeline(_arrays(300, seed=1), batch_size=64) if validate else None
    model.fit(
        data.training_pipeline(arrays, P(batch_size=batch_size, seed=3)),
        epochs=epochs,
        validation_data=val,
        callbacks=[CountSteps()],
        shuffle=False,
        verbose=0,
    )
    assert seen == [steps, 2 * steps, 3 * steps]
    assert _steps(model) == epochs * steps


def test_a_resumed_epoch_trains_only_its_remaining_steps():
    arrays = _arrays(1237)  # 13 steps at 100
    model = build_model(ModelConfig(width=16), OptimConfig(jit_compile="off"))
    model.fit(
        data.rest_of_epoch(arrays, P(batch_size=100, seed=3), epoch=1, skip=5),
        initial_epoch=1,
        epochs=2,
        shuffle=False,
        verbose=0,
    )
    model.fit(
        data.training_pipeline(arrays, P(batch_size=100, seed=3), counter=data.EpochCounter(2)),
        initial_epoch=2,
        epochs=4,
        shuffle=False,
        verbose=0,
    )
    assert _steps(model) == 8 + 2 * 13


@pytest.mark.parametrize("verbose", [1, 2])
def test_the_progress_bar_counts_the_optimizer_s_steps(capsys, verbose):
    """An epoch of 47 steps in chunks of 64: Keras's own bar would read 64/47."""
    model = build_model(ModelConfig(width=16), OptimConfig(jit_compile="off"))
    model.fit(
        data.training_pipeline(_arrays(6000), P(batch_size=128, seed=3)),
        epochs=2,
        callbacks=[StepProgress(verbose)],
        shuffle=False,
        verbose=0,
    )
    out = capsys.readouterr().out
    assert out.count("47/47") >= 2 and "64/47" not in out and "Epoch 2/2" in out


def test_relunet_train_with_the_default_chunk_trains_epochs_times_steps(tmp_path, source):
    """The command line's path, under its defaults (XLA, 64-step chunks, validation on,
    a backup every 100 steps) on an odd split: 1237 images, 10 steps of 128."""
    run_dir = tmp_path / "run"
    metrics = train(
        TrainConfig(
            train_split="train[:1237]",
            val_split="train[50000:50333]",
            test_split="test[:500]",
            epochs=3,
            run_dir=str(run_dir),
            verbose=0,
        )
    )
    assert metrics["optimizer_steps"] == 3 * 10
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics
    assert metrics["epochs_completed"] == 3
    # 1237 images an epoch, counted by the model's own tracker
    assert metrics["train_samples_per_second"] * metrics["train_seconds"] == pytest.approx(
        3 * 1237, rel=1e-3
    )
    rows = (run_dir / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1", "2"]


def test_the_cosine_schedule_reaches_zero_exactly_at_the_last_step(tmp_path, source):
    run_dir = tmp_path / "run"
    train(
        TrainConfig(
            train_split="train[:1000]",
            val_split="none",
            test_split="test[:100]",
            epochs=2,
            lr_schedule="cosine",
            jit_compile="off",  # the schedule does not depend on XLA (2-3 s to compile)
            run_dir=str(run_dir),
            verbose=0,
        )
    )
    model = keras.models.load_model(run_dir / "best.keras")
    schedule = keras.optimizers.schedules.deserialize(model.optimizer.get_config()["learning_rate"])
    assert _steps(model) == schedule.decay_steps == 2 * 8  # ceil(1000 / 128) steps an epoch
    assert float(schedule(15)) > 0  # the last step still learns
    assert float(model.optimizer.learning_rate) == pytest.approx(0, abs=1e-12)  # and then 0
    assert json.loads((run_dir / "metrics.json").read_text())["optimizer_steps"] == 16


def test_looking_at_a_batch_before_fit_does_not_change_the_epochs_it_trains():
    """The EpochCounter in fit's callbacks tells the pipeline which epoch each pass is;
    a peek starts a pass."""
    arrays = _arrays(600)

    def trained(peek):
        keras.utils.set_random_seed(5)
        model = build_model(
            ModelConfig(width=16), OptimConfig(jit_compile="off", steps_per_execution=4)
        )
        counter = data.EpochCounter()
        batches = data.training_pipeline(arrays, P(batch_size=100, seed=3), counter=counter)
        if peek:
            next(iter(batches))
        model.fit(batches, epochs=2, callbacks=[counter], verbose=0, shuffle=False)
        return model.get_weights()

    for a, b in zip(trained(peek=False), trained(peek=True), strict=True):
        np.testing.assert_array_equal(a, b)
