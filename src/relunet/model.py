"""The lab's dense network as a `keras.Model` whose `fit()` runs the lab's own functions.

Deep Learning Zero To All (season 2, lab 10) trains MNIST with three functions:
`loss_fn` (softmax cross-entropy from logits), `accuracy_fn` (argmax agreement) and
`grad` (a GradientTape around `loss_fn`). `ReluNet.train_step` is built from exactly
those, following Keras's "Customizing what happens in fit()" guide, so `model.fit`,
callbacks, `evaluate` and `predict` all work while the lab's math stays in view.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import tensorflow as tf

from relunet.callbacks import FollowEpochs, ProgressBar
from relunet.config import ACTIVATIONS, INITS
from relunet.errors import RelunetError

NUM_CLASSES = 10
INPUT_SHAPE = (28, 28, 1)


def loss_fn(model: keras.Model, images: tf.Tensor, labels: tf.Tensor,
            logits: tf.Tensor | None = None) -> tf.Tensor:
    """Mean softmax cross-entropy between the model's logits and one-hot labels.

    Pass `logits` when the forward pass has already run on these images.
    """
    if logits is None:
        logits = model(images, training=True)
    return tf.reduce_mean(
        keras.losses.categorical_crossentropy(labels, logits, from_logits=True)
    )


def accuracy_fn(model: keras.Model, images: tf.Tensor, labels: tf.Tensor,
                logits: tf.Tensor | None = None) -> tf.Tensor:
    """Fraction of images whose highest logit is the labelled class."""
    if logits is None:
        logits = model(images, training=False)
    correct = tf.equal(tf.argmax(logits, axis=-1), tf.argmax(labels, axis=-1))
    return tf.reduce_mean(tf.cast(correct, tf.float32))


class Gradients(NamedTuple):
    loss: tf.Tensor
    gradients: list[tf.Tensor]  # one per trainable variable, in the same order
    logits: tf.Tensor  # kept so the step's metrics need no second forward pass


def grad(model: keras.Model, images: tf.Tensor, labels: tf.Tensor) -> Gradients:
    """The loss and its gradient with respect to the trainable variables (one backward pass).

    Under tf.distribute the gradient is that of the mean over the global batch, which is
    what the optimizer needs: it sums the replicas' gradients.
    """
    with tf.GradientTape() as tape:
        logits = model(images, training=True)
        loss = loss_fn(model, images, labels, logits=logits)
        global_batch_share = loss * share_of_global_batch(images)
    return Gradients(loss, tape.gradient(global_batch_share, model.trainable_variables), logits)


def share_of_global_batch(images: tf.Tensor) -> tf.Tensor | float:
    """This replica's fraction of the global batch: 1 without distribution.

    Each replica's mean loss, weighted so, sums over replicas to the global-batch mean,
    even when the last batch splits unevenly. Counted with an all-reduce rather than
    assumed to be 1/num_replicas.
    """
    if tf.distribute.get_strategy().num_replicas_in_sync == 1:
        return 1.0
    local = tf.cast(tf.shape(images)[0], tf.float32)
    total = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, local)
    return local / tf.maximum(total, 1.0)


@keras.saving.register_keras_serializable(package="relunet")
class ReluNet(keras.Model):
    """Flatten -> depth x (Dense(width) -> activation) -> Dense(10) logits.

    The defaults are the lab's network: two hidden layers of 256 ReLU units with
    RandomNormal(stddev=0.05) kernels. The last layer returns logits, never
    probabilities; losses take them with `from_logits=True`.
    """

    def __init__(self, width: int = 256, depth: int = 2, activation: str = "relu",
                 init: str = "random_normal", num_classes: int = NUM_CLASSES,
                 grad_norms: bool = False, **kwargs):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise RelunetError(f"activation must be one of {', '.join(ACTIVATIONS)}. "
                               f"Received: {activation!r}.")
        if init not in INITS:
            raise RelunetError(f"init must be one of {', '.join(INITS)}. Received: {init!r}.")
        self.width, self.depth, self.activation = width, depth, activation
        self.init, self.num_classes, self.grad_norms = init, num_classes, grad_norms
        self.flatten = keras.layers.Flatten()
        self.hidden = [
            keras.layers.Dense(width, activation=activation, kernel_initializer=init,
                               name=f"dense_{i}")
            for i in range(depth)
        ]
        self.logits = keras.layers.Dense(num_classes, kernel_initializer=init, name="logits")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")
        # Gradient-flow diagnostics: the mean over an epoch's batches of the L2 norm of
        # each Dense kernel's gradient. Off by default, and then nothing is computed.
        self.grad_norm_trackers = [
            keras.metrics.Mean(name=f"grad_norm/{layer.name}") for layer in self.dense_layers
        ] if grad_norms else []

    @property
    def dense_layers(self) -> list[keras.layers.Dense]:
        """The hidden layers and the logits layer, input side first."""
        return [*self.hidden, self.logits]

    def build(self, input_shape=(None, *INPUT_SHAPE)) -> None:
        units = 1
        for size in input_shape[1:]:
            units *= size
        for layer in self.hidden:
            layer.build((None, units))
            units = layer.units
        self.logits.build((None, units))
        self.built = True

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3 reduces a sample batch across workers here to build what is unbuilt,
        # which fails under MultiWorkerMirroredStrategy (a PerReplica it cannot convert).
        # build_model builds the model and its optimizer up front, so skip it then.
        if self.built and self.optimizer is not None and self.optimizer.built:
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def call(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
        x = self.flatten(images)
        for layer in self.hidden:
            x = layer(x)
        return self.logits(x)

    def fit(self, x=None, *args, callbacks=None, verbose="auto", **kwargs):
        """`keras.Model.fit`, with a progress bar that counts the optimizer's steps.

        Keras's own counts whole `steps_per_execution` chunks, so an epoch of 47 steps
        run in chunks of 64 would briefly read 64/47. A `tf.data.Dataset` is taken as
        already shuffled (relunet's pipelines are), without Keras's warning about it,
        and a relunet training pipeline gives each epoch that epoch's order.
        """
        callbacks = list(callbacks or [])
        if verbose != 0 and not any(isinstance(c, keras.callbacks.ProgbarLogger)
                                    for c in callbacks):
            callbacks.append(ProgressBar())
        if hasattr(x, "next_epoch"):
            callbacks.append(FollowEpochs(x.next_epoch))
        if isinstance(x, tf.data.Dataset):
            kwargs.setdefault("shuffle", False)
        return super().fit(x, *args, callbacks=callbacks, verbose=verbose, **kwargs)

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        # Listed here so that Keras resets them at the start of each epoch and evaluate().
        return [self.loss_tracker, self.accuracy_tracker, *self.grad_norm_trackers]

    def train_step(self, data):
        # (images, labels), or with a third None from train_on_batch; no sample weights.
        images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        # Forward and backward pass: the lab's grad() runs loss_fn under a GradientTape.
        loss, gradients, logits = grad(self, images, labels)
        # Update the weights.
        self.optimizer.apply(gradients, self.trainable_variables)
        # Update the metrics, from the logits the gradient pass already computed.
        logs = self._track(images, loss, accuracy_fn(self, images, labels, logits=logits))
        if self.grad_norms:
            logs.update(self._track_grad_norms(gradients))
        return logs

    def test_step(self, data):
        images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        logits = self(images, training=False)
        loss = loss_fn(self, images, labels, logits=logits)
        return self._track(images, loss, accuracy_fn(self, images, labels, logits=logits))

    def _track(self, images: tf.Tensor, loss: tf.Tensor, accuracy: tf.Tensor) -> dict:
        # Weight by batch size so an epoch's value is a mean over images, not over batches.
        batch = tf.cast(tf.shape(images)[0], tf.float32)
        # A replica handed no images (a last batch smaller than the replicas) has NaN means.
        loss, accuracy = (tf.where(batch > 0, value, 0.0) for value in (loss, accuracy))
        self.loss_tracker.update_state(loss, sample_weight=batch)
        self.accuracy_tracker.update_state(accuracy, sample_weight=batch)
        return _step_logs((self.loss_tracker, self.accuracy_tracker))

    def _track_grad_norms(self, gradients: list[tf.Tensor]) -> dict:
        """Norms of the kernel gradients `grad` already computed: no second backward pass."""
        for norm, tracker in zip(kernel_grad_norms(self, gradients).values(),
                                 self.grad_norm_trackers):
            tracker.update_state(norm)
        return _step_logs(self.grad_norm_trackers)

    def get_config(self) -> dict:
        return {**super().get_config(), "width": self.width, "depth": self.depth,
                "activation": self.activation, "init": self.init,
                "num_classes": self.num_classes, "grad_norms": self.grad_norms}


def _step_logs(metrics) -> dict[str, tf.Tensor]:
    """A step's logs: each metric's running value.

    Across workers Keras 3 averages a step's logs with `reduce(MEAN, axis=0)`, which
    fails on scalars; there each value gets an axis of length 1 to be averaged over.
    """
    logs = {metric.name: metric.result() for metric in metrics}
    extended = tf.distribute.get_strategy().extended
    if getattr(extended, "_in_multi_worker_mode", lambda: False)():
        logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
    return logs


def kernel_grad_norms(model: ReluNet, gradients: list[tf.Tensor]) -> dict[str, tf.Tensor]:
    """The L2 norm of each Dense kernel's gradient, by layer name, input side first."""
    by_variable = {id(v): g for v, g in zip(model.trainable_variables, gradients)}
    return {layer.name: tf.norm(by_variable[id(layer.kernel)]) for layer in model.dense_layers}


def build_model(width: int = 256, depth: int = 2, activation: str = "relu",
                init: str = "random_normal", learning_rate: float = 1e-3,
                jit_compile: str | bool = "auto", grad_norms: bool = False,
                lr_schedule: str = "constant", decay_steps: int | None = None,
                steps_per_execution: int = 1,
                optimizer: keras.optimizers.Optimizer | None = None) -> ReluNet:
    """A built ReluNet compiled with the lab's Adam optimizer (or `optimizer`).

    `lr_schedule="cosine"` decays the learning rate to 0 over `decay_steps` steps.
    `steps_per_execution` runs that many train steps per call into the compiled function.
    Under tf.distribute, call it inside `strategy.scope()`.
    """
    model = ReluNet(width=width, depth=depth, activation=activation, init=init,
                    grad_norms=grad_norms)
    model.build()
    if lr_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps)
    optimizer = optimizer or keras.optimizers.Adam(learning_rate)
    model.compile(optimizer=optimizer, jit_compile=_jit(jit_compile),
                  steps_per_execution=steps_per_execution)
    model.optimizer.build(model.trainable_variables)  # now, inside any strategy scope
    return model


def load_model(path: str) -> keras.Model:
    """Load a `.keras` file written by relunet (safe_mode on)."""
    return keras.models.load_model(path)


def _jit(setting: str | bool) -> str | bool:
    return {"on": True, "off": False}.get(setting, setting) if isinstance(setting, str) else setting
