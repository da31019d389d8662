"""Every use of a private Keras, keras-tuner or TensorFlow API, in one place.

Each one says the library version it was written against (the ones requirements.txt
pins), why no public API serves, and the upstream issue where there is one.
`tests/test_compat.py` checks each against the installed libraries, so an upgrade
that moves one fails there, by name, instead of somewhere deep in a run.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the command line imports this module before any TensorFlow
    import keras


class BuiltModelSkipsSymbolicBuild:
    """Mixin for a `keras.Model` that is built, with its optimizer, before `fit`.

    Keras 3.15.1 (keras/src/backend/tensorflow/trainer.py): `fit` calls the private
    `Model._maybe_symbolic_build`, which under MultiWorkerMirroredStrategy reduces a
    sample batch across workers to build what is unbuilt, and fails on the PerReplica
    value it cannot convert. `build_model` builds the model and its optimizer up front,
    so there is nothing to build: skip it then.
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self.built and self.optimizer is not None and self.optimizer.built:
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)


def in_multi_worker_mode() -> bool:
    """Whether the current strategy spans workers. TensorFlow 2.21 exposes this only as
    the private `StrategyExtended._in_multi_worker_mode()`. Keras 3.15.1 averages a
    step's logs across workers with `reduce(MEAN, axis=0)`, which fails on scalars, so
    ReluNet gives them an axis there."""
    import tensorflow as tf

    extended = tf.distribute.get_strategy().extended
    return bool(getattr(extended, "_in_multi_worker_mode", lambda: False)())


def resume_fit_at_epoch(model: keras.Model, epoch: int) -> None:
    """Make the next `fit` start at `epoch`, as Keras's own BackupAndRestore does in
    3.15.1 (it sets the private `Model._initial_epoch` in `on_train_begin`)."""
    model._initial_epoch = epoch


def op_determinism_enabled() -> bool:
    """Whether `tf.config.experimental.enable_op_determinism()` is in force. TensorFlow
    2.21 has no public query; `tensorflow.python.framework.config` keeps it."""
    from tensorflow.python.framework import config

    return config.is_op_determinism_enabled()


@contextlib.contextmanager
def forget_custom_gradients_traced_in_block() -> Iterator[None]:
    """Unregister, when the block ends, the gradient functions TensorFlow registered for
    `tf.custom_gradient`s traced inside it.

    TensorFlow 2.21 (tensorflow/python/ops/custom_gradient.py, `_graph_mode_decorator`)
    registers each graph-mode trace of a custom gradient in the private, process-wide
    `ops._gradient_registry` under a new name ("CustomGradient-<uid>"), and nothing ever
    removes it. Keras 3.15.1's optimizer traces one in every train function it builds
    (`_all_reduce_sum_gradients` calls `ReplicaContext.all_reduce`, which has one), and
    the entry's closure holds that function's graph and, through its captures, the
    model's variables: every model a process trains stays in memory after
    `keras.backend.clear_session()`. Forgetting them is safe for a block whose models
    are not trained after it ends (a search's trial): nobody asks for those graphs'
    gradients again. Upstream: tensorflow/tensorflow#27492 and
    #80895 (keras-team/tf-keras#898 proposes the same purge in `clear_session`)."""
    from tensorflow.python.framework import ops

    registry = ops._gradient_registry._registry
    before = set(registry)
    try:
        yield
    finally:
        for name in [n for n in registry if n not in before]:
            if name.startswith("CustomGradient-"):
                del registry[name]


# -- keras-tuner 1.4.8 ----------------------------------------------------------------


def requeue_trials_a_kill_interrupted(oracle: Any) -> None:
    """Fix the two states a SIGKILL can leave keras-tuner 1.4.8's records in, after a
    reload (its private `Oracle._retry_queue`):
    - `end_trial` saves oracle.json while the ended trial is still listed as ongoing, so
      `reload()` queues the finished trial for a retry: drop it from the queue;
    - `create_trial` writes the new trial's trial.json (RUNNING) before oracle.json, so
      the oracle counts the trial towards max_trials but neither runs nor ends it:
      queue it, as `reload()` queues the trials it knows were ongoing."""
    if not hasattr(oracle, "_retry_queue"):  # a worker's client, not the chief's oracle
        return
    ended = set(oracle.end_order)
    oracle._retry_queue = [t for t in oracle._retry_queue if t not in ended]
    for trial_id, trial in sorted(oracle.trials.items()):
        if trial.status == "RUNNING" and trial_id not in ended | set(oracle._retry_queue):
            oracle._retry_queue.append(trial_id)


@contextlib.contextmanager
def atomic_keras_tuner_records(write_text_atomic) -> Iterator[None]:
    """While the block runs, keras-tuner writes its records (oracle.json, tuner0.json,
    trial.json) atomically. keras-tuner 1.4.8 writes them in place through its private
    `keras_tuner.src.utils.save_json`, so a kill can leave half a record; this swaps
    that function for the block's duration and puts it back after."""
    from keras_tuner.src import utils

    original = utils.save_json

    def save_json(path, obj):
        if "://" in str(path):  # a remote file system: keep keras-tuner's own writer
            return original(path, obj)
        text = json.dumps(obj)
        write_text_atomic(Path(path), text)
        return text

    utils.save_json = save_json
    try:
        yield
    finally:
        utils.save_json = original


@contextlib.contextmanager
def keras_tuner_knows_it_is_not_in_a_notebook() -> Iterator[None]:
    """keras-tuner 1.4.8 decides at import, in its private `keras_tuner.src.utils`,
    that it runs in a notebook whenever IPython is installed (`get_ipython()` is None
    outside one, and "Terminal" is not in "NoneType"), then clears the "notebook" after
    every trial by printing the escape codes ESC[2K into the terminal or log. Outside
    IPython, set the flag right for the block's duration."""
    from keras_tuner.src import utils

    try:
        from IPython import get_ipython
    except ImportError:
        get_ipython = lambda: None  # noqa: E731
    original = utils.IS_NOTEBOOK
    utils.IS_NOTEBOOK = original and get_ipython() is not None
    try:
        yield
    finally:
        utils.IS_NOTEBOOK = original


def is_keras_tuner_worker() -> bool:
    """Whether this process is a worker of a distributed search (not its chief), from
    keras-tuner 1.4.8's private `keras_tuner.src.distribute.utils` (which reads the
    KERASTUNER_* variables)."""
    from keras_tuner.src.distribute import utils

    return utils.has_chief_oracle() and not utils.is_chief_oracle()
