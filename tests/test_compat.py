"""Each private library API that relunet.base._compat uses still exists and still behaves as
relunet relies on. A library upgrade that moves one fails here, by name."""

import inspect
import subprocess
import sys

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

from relunet.base import _compat
from relunet.config import ModelConfig, OptimConfig
from relunet.training.model import build_model


def test_keras_fit_still_calls_maybe_symbolic_build_with_these_arguments():
    signature = inspect.signature(keras.Model._maybe_symbolic_build)
    assert list(signature.parameters) == ["self", "iterator", "data_batch"]
    fit_source = inspect.getsource(keras.Model.fit)
    assert "_maybe_symbolic_build(" in fit_source


def test_strategies_still_say_whether_they_span_workers():
    assert _compat.in_multi_worker_mode() is False
    extended = tf.distribute.MirroredStrategy(["/cpu:0"]).extended
    assert extended._in_multi_worker_mode() is False


def test_fit_still_starts_at_the_private_initial_epoch():
    model = build_model(ModelConfig(width=8), OptimConfig(jit_compile="off", steps_per_execution=1))
    x = np.zeros((4, 28, 28, 1), np.float32)
    y = np.eye(10, dtype=np.float32)[[0, 1, 2, 3]]
    _compat.resume_fit_at_epoch(model, 2)
    history = model.fit(x, y, epochs=3, verbose=0)
    assert history.epoch == [2]


@pytest.mark.slow  # a fresh TensorFlow: the full suite's, and each Python's
@pytest.mark.pythons
def test_op_determinism_can_still_be_queried():
    code = (
        "import tensorflow as tf\nfrom relunet.base._compat import op_determinism_enabled as on\n"
        "before = on()\ntf.config.experimental.enable_op_determinism()\nprint(before, on())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.stdout.split() == ["False", "True"], result.stderr[-2000:]


def test_keras_tuner_oracles_still_keep_a_retry_queue_an_end_order_and_trial_states():
    oracle = keras_tuner.oracles.RandomSearchOracle(objective="val_accuracy", max_trials=3)
    assert oracle._retry_queue == [] and oracle.end_order == [] and oracle.trials == {}
    for trial_id, status in [("0", "COMPLETED"), ("1", "RUNNING"), ("2", "RUNNING")]:
        oracle.trials[trial_id] = keras_tuner.engine.trial.Trial(
            hyperparameters=keras_tuner.HyperParameters(), trial_id=trial_id, status=status
        )
    oracle._retry_queue, oracle.end_order = ["0", "1"], ["0"]
    _compat.requeue_trials_a_kill_interrupted(oracle)
    assert oracle._retry_queue == ["1", "2"]


def test_keras_tuner_still_writes_its_records_through_utils_save_json(tmp_path):
    written = []
    trial = keras_tuner.engine.trial.Trial(
        hyperparameters=keras_tuner.HyperParameters(), trial_id="0"
    )
    with _compat.atomic_keras_tuner_records(lambda path, text: written.append(path)):
        trial.save(str(tmp_path / "trial.json"))
    assert written == [tmp_path / "trial.json"]


def test_keras_tuner_still_reads_its_role_from_the_environment(monkeypatch):
    assert _compat.is_keras_tuner_worker() is False
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    assert _compat.is_keras_tuner_worker() is True
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    assert _compat.is_keras_tuner_worker() is False


def test_keras_tuner_still_decides_notebook_or_not_in_utils_and_is_told_outside_one(capsys):
    from keras_tuner.src import utils

    from relunet.base._compat import keras_tuner_knows_it_is_not_in_a_notebook

    assert isinstance(utils.IS_NOTEBOOK, bool) and callable(utils.try_clear)
    with keras_tuner_knows_it_is_not_in_a_notebook():
        assert utils.IS_NOTEBOOK is False  # pytest runs outside IPython
        utils.try_clear()
    assert "\x1b" not in capsys.readouterr().out


def test_tensorflow_still_registers_a_gradient_for_each_traced_train_step_and_it_is_forgotten():
    from tensorflow.python.framework import ops

    def custom_gradients():
        return {n for n in ops._gradient_registry._registry if n.startswith("CustomGradient-")}

    model = build_model(ModelConfig(width=8), OptimConfig(jit_compile="off", steps_per_execution=1))
    x = np.zeros((4, 28, 28, 1), np.float32)
    y = np.eye(10, dtype=np.float32)[[0, 1, 2, 3]]
    before = custom_gradients()
    with _compat.forget_custom_gradients_traced_in_block():
        model.fit(x, y, epochs=1, verbose=0)
        assert custom_gradients() - before  # the optimizer's all_reduce, traced: the leak
    assert custom_gradients() == before
