"""The lab's dense network as a `keras.Model` whose `fit()` runs the lab's own functions.

Deep Learning Zero To All (season 2, lab 10) trains MNIST with three functions:
`loss_fn` (softmax cross-entropy from logits), `accuracy_fn` (argmax agreement) and
`grad` (a GradientTape around `loss_fn`), and a loop that applies `grad`'s result with
the optimizer. `ReluNet.train_step` is built from exactly those, following Keras's
"Customizing what happens in fit()" guide, so `model.fit`, callbacks, `evaluate` and
`predict` all work while the lab's math stays in view.

The input contract: the Keras model takes float32 images [n, 28, 28, 1] with pixels
in [0, 1] (`relunet.data.to_inputs` makes them from uint8) and returns logits [n, 10],
never probabilities. The exported SavedModel wraps that: uint8 in, probabilities out
(see `relunet.inference.export`).

`ReluNet(ModelConfig(...))` is the network; `build_model(model, optim)` builds and
compiles it. Both take the config groups whole, so a new layer option is a field of
`relunet.config.ModelConfig` and the line of `ReluNet` that reads it. `calibrated` is
the calibrated softmax every answer goes through, here beside the temperature and
threshold the model carries. (About 320 lines: the lab's functions, the model that
runs them and the builder read as one.)
"""

from __future__ import annotations

import dataclasses
import os

import keras
import tensorflow as tf

from relunet.base._compat import BuiltModelSkipsSymbolicBuild, in_multi_worker_mode
from relunet.base.mnist import INPUT_SHAPE, NUM_CLASSES
from relunet.config import ModelConfig, OptimConfig
from relunet.imaging.transform import deskew

_MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))


def loss_fn(
    model: keras.Model, images: tf.Tensor, labels: tf.Tensor, logits: tf.Tensor | None = None
) -> tf.Tensor:
    """Mean softmax cross-entropy between the model's logits and one-hot labels.

    Pass `logits` when the forward pass has already run on these images.
    """
    if logits is None:
        logits = model(images, training=True)
    return tf.reduce_mean(keras.losses.categorical_crossentropy(labels, logits, from_logits=True))


def accuracy_fn(
    model: keras.Model, images: tf.Tensor, labels: tf.Tensor, logits: tf.Tensor | None = None
) -> tf.Tensor:
    """Fraction of images whose highest logit is the labelled class (an image labelled
    with no class, a shape that is not a digit, is not counted)."""
    if logits is None:
        logits = model(images, training=False)
    correct = tf.equal(tf.argmax(logits, axis=-1), tf.argmax(labels, axis=-1))
    has_class = tf.reduce_max(labels, axis=-1) > 1.0 / NUM_CLASSES + 1e-4  # not uniform
    counted = tf.cast(has_class, tf.float32)
    return tf.reduce_sum(tf.cast(correct, tf.float32) * counted) / tf.maximum(
        tf.reduce_sum(counted), 1.0
    )


class Gradients(list):
    """What `grad` returns: the gradients, one per trainable variable, as a list (so
    `optimizer.apply(grads, model.trainable_variables)` takes it, as in the lab), plus
    the loss and logits they came from, so train_step needs no second forward pass."""

    def __init__(self, gradients, loss: tf.Tensor, logits: tf.Tensor):
        super().__init__(gradients)
        self.loss, self.logits = loss, logits


def grad(model: keras.Model, images: tf.Tensor, labels: tf.Tensor, loss=None) -> Gradients:
    """The gradient of `loss_fn` with respect to the trainable variables, as the lab has it.
    Another network's loss (`loss(model, images, labels, logits=...)`, the finder's)
    takes its place through `loss`."""
    with tf.GradientTape() as tape:
        logits = model(images, training=True)
        value = (loss or loss_fn)(model, images, labels, logits=logits)
    return Gradients(tape.gradient(value, model.trainable_variables), value, logits)


def scaled_to_global_batch(gradients: list[tf.Tensor], images: tf.Tensor) -> list[tf.Tensor]:
    """Under tf.distribute, weight a replica's gradients by its share of the global batch.

    `grad` gives the gradient of this replica's mean loss; the optimizer sums the
    replicas' gradients. Weighted by share (counted with an all-reduce, so an uneven or
    empty last slice is right too), that sum is the gradient of the global batch's mean.
    On one device the share is 1 and nothing is computed.
    """
    if tf.distribute.get_strategy().num_replicas_in_sync == 1:
        return gradients
    local = tf.cast(tf.shape(images)[0], tf.float32)
    total = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, local)
    share = local / tf.maximum(total, 1.0)
    return [g * share for g in gradients]


@keras.saving.register_keras_serializable(package="relunet")
class ReluNet(BuiltModelSkipsSymbolicBuild, keras.Model):
    """[deskew ->] Flatten -> depth x (Dense(width) [-> BatchNorm] -> activation
    [-> Dropout]) -> Dense(10) logits.

    The defaults are the lab's network: two hidden layers of 256 ReLU units with
    RandomNormal(stddev=0.05) kernels. The last layer returns logits, never
    probabilities; losses take them with `from_logits=True`.
    """

    def __init__(
        self,
        config: ModelConfig | None = None,
        *,
        num_classes: int = NUM_CLASSES,
        grad_norms: bool = False,
        temperature: float = 1.0,
        reject_below: float = 0.0,
        **kwargs,
    ):
        # A saved model comes back with its config's fields as keywords (get_config).
        fields = {name: kwargs.pop(name) for name in _MODEL_FIELDS if name in kwargs}
        super().__init__(**kwargs)
        config = dataclasses.replace(config or ModelConfig(), **fields).check_model()
        self.config, self.num_classes, self.grad_norms = config, num_classes, grad_norms
        # Set by relunet.training.calibrate once trained: the logits are divided by the
        # temperature before the softmax, and a digit whose probability stays below
        # `reject_below` is answered "not a digit". The defaults change nothing.
        self.temperature, self.reject_below = float(temperature), float(reject_below)
        self.flatten = keras.layers.Flatten()
        self.hidden = [
            keras.layers.Dense(config.width, kernel_initializer=config.init, name=f"dense_{i}")
            for i in range(config.depth)
        ]
        self.norms = [  # lab 10-4: each layer's pre-activations normalised over the batch
            keras.layers.BatchNormalization(name=f"batch_norm_{i}")
            for i in range(config.depth if config.batch_norm else 0)
        ]
        self.activation = keras.activations.get(config.activation)
        # lab 10-3: one Dropout, applied after each hidden layer, its masks drawn from a
        # seed generator whose state is a model variable (so a backup resumes it exactly).
        self.dropout = keras.layers.Dropout(config.dropout) if config.dropout else None
        self.logits = keras.layers.Dense(num_classes, kernel_initializer=config.init, name="logits")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")
        # Gradient-flow diagnostics: the mean over an epoch's batches of the L2 norm of
        # each Dense kernel's gradient. Off by default, and then nothing is computed.
        self.grad_norm_trackers = (
            [keras.metrics.Mean(name=f"grad_norm/{layer.name}") for layer in self.dense_layers]
            if grad_norms
            else []
        )

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
        for norm in self.norms:
            norm.build((None, units))
        self.logits.build((None, units))
        self.built = True

    def call(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
        if self.config.deskew:  # [n, 28, 28] as well as [n, 28, 28, 1], as without it
            images = deskew(tf.reshape(images, [-1, *INPUT_SHAPE]))
        x = self.flatten(images)
        for i, layer in enumerate(self.hidden):
            x = layer(x)
            if self.norms:
                x = self.norms[i](x, training=training)
            x = self.activation(x)
            if self.dropout is not None:
                x = self.dropout(x, training=training)
        return self.logits(x)

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        # Listed here so that Keras resets them at the start of each epoch and evaluate().
        return [self.loss_tracker, self.accuracy_tracker, *self.grad_norm_trackers]

    def train_step(self, data):
        # (images, labels), or with a third None from train_on_batch; no sample weights.
        images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        # Forward and backward pass: the lab's grad() runs loss_fn under a GradientTape.
        gradients = grad(self, images, labels)
        # Update the weights (with each replica's share of the global batch).
        self.optimizer.apply(scaled_to_global_batch(gradients, images), self.trainable_variables)
        # Update the metrics, from the logits the gradient pass already computed.
        accuracy = accuracy_fn(self, images, labels, logits=gradients.logits)
        logs = self._track(images, gradients.loss, accuracy)
        if self.grad_norms:
            logs.update(self._track_grad_norms(gradients))
        return logs

    def test_step(self, data):
        images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        logits = self(images, training=False)
        loss = loss_fn(self, images, labels, logits=logits)
        return self._track(images, loss, accuracy_fn(self, images, labels, logits=logits))

    def export(
        self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs
    ):
        """`keras.Model.export`: the Keras model's own SavedModel (float32 pixels in [0, 1]
        in, logits out; its endpoint is `serve`). A subclassed model has no declared
        input, so the signature defaults to the one ReluNet always takes. For TF Serving,
        with uint8 or encoded images in and probabilities out, use `relunet export`."""
        if input_signature is None:
            input_signature = [keras.InputSpec(shape=(None, *INPUT_SHAPE), dtype="float32")]
        return super().export(
            filepath, format=format, verbose=verbose, input_signature=input_signature, **kwargs
        )

    def _track(self, images: tf.Tensor, loss: tf.Tensor, accuracy: tf.Tensor) -> dict:
        # Weight by batch size so an epoch's value is a mean over images, not over
        # batches.
        batch = tf.cast(tf.shape(images)[0], tf.float32)
        # A replica handed no images (a last batch smaller than the replicas) has NaN
        # means.
        loss, accuracy = (tf.where(batch > 0, value, 0.0) for value in (loss, accuracy))
        self.loss_tracker.update_state(loss, sample_weight=batch)
        self.accuracy_tracker.update_state(accuracy, sample_weight=batch)
        return _step_logs((self.loss_tracker, self.accuracy_tracker))

    def _track_grad_norms(self, gradients: list[tf.Tensor]) -> dict:
        """Norms of the kernel gradients `grad` already computed: no second backward pass."""
        norms = kernel_grad_norms(self, gradients).values()
        for norm, tracker in zip(norms, self.grad_norm_trackers, strict=True):
            tracker.update_state(norm)
        return _step_logs(self.grad_norm_trackers)

    def probabilities(self, images: tf.Tensor) -> tf.Tensor:
        """Calibrated class probabilities of float images [n, 28, 28, 1] (`calibrated`)."""
        return calibrated(self, self(images, training=False))[0]

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            **dataclasses.asdict(self.config),
            "num_classes": self.num_classes,
            "grad_norms": self.grad_norms,
            "temperature": self.temperature,
            "reject_below": self.reject_below,
        }


def calibrated(model: keras.Model, logits: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The calibrated softmax, the one rule relunet answers by, in the export's graph and
    for a .keras model alike: (probabilities [n, 10], the softmax of the logits over the
    model's temperature; rejected [n], whether the highest stays under its "not a digit"
    threshold). relunet.training.calibrate fits both; a model from elsewhere has neither,
    and then its softmax is as trained and nothing is rejected."""
    probabilities = tf.nn.softmax(logits / getattr(model, "temperature", 1.0), axis=-1)
    threshold = getattr(model, "reject_below", 0.0)
    return probabilities, tf.reduce_max(probabilities, axis=-1) < threshold


def _step_logs(metrics) -> dict[str, tf.Tensor]:
    """A step's logs: each metric's running value (with an axis across workers, where
    Keras averages them along one; see _compat.in_multi_worker_mode)."""
    logs = {metric.name: metric.result() for metric in metrics}
    if in_multi_worker_mode():
        logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
    return logs


def kernel_grad_norms(model: ReluNet, gradients: list[tf.Tensor]) -> dict[str, tf.Tensor]:
    """The L2 norm of each Dense kernel's gradient, by layer name, input side first."""
    by_variable = {id(v): g for v, g in zip(model.trainable_variables, gradients, strict=True)}
    return {layer.name: tf.norm(by_variable[id(layer.kernel)]) for layer in model.dense_layers}


def build_model(
    model: ModelConfig | None = None,
    optim: OptimConfig | None = None,
    *,
    decay_steps: int | None = None,
    grad_norms: bool = False,
    optimizer: keras.optimizers.Optimizer | None = None,
) -> ReluNet:
    """A built ReluNet compiled with the lab's Adam optimizer (or `optimizer`).

    The defaults are `relunet train`'s: the lab's network and Adam(1e-3), compiled with
    XLA and 64 train steps per call. From `optim` it reads the learning rate and its
    schedule (`cosine` decays to 0 over `decay_steps` steps) and how the step is
    compiled: `jit_compile`, `steps_per_execution`, and `run_eagerly`, which runs
    train_step op by op (no XLA then), so print() and a debugger see the lab's
    functions at work; `deterministic` also turns XLA off, as Keras does under op
    determinism (not every XLA op is deterministic). Under tf.distribute, call it
    inside `strategy.scope()`: with several replicas it compiles without XLA and one
    step per call, the settings that work there (XLA cannot compile a step whose
    variables live on several devices, and Keras 3 fails on steps_per_execution > 1,
    keras-team/keras#19246).
    """
    optim = optim or OptimConfig()
    jit_compile, steps_per_execution = optim.jit_compile, optim.steps_per_execution
    if tf.distribute.get_strategy().num_replicas_in_sync > 1:
        jit_compile, steps_per_execution = "off", 1
    if optim.run_eagerly or optim.deterministic:  # Keras turns XLA off under determinism
        jit_compile = "off"
    network = ReluNet(model, grad_norms=grad_norms)
    network.build()
    learning_rate = optim.learning_rate
    if optim.lr_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps)
    network.compile(
        optimizer=optimizer or keras.optimizers.Adam(learning_rate),
        jit_compile={"on": True, "off": False}.get(jit_compile, jit_compile),
        steps_per_execution=steps_per_execution,
        run_eagerly=optim.run_eagerly,
    )
    network.optimizer.build(network.trainable_variables)  # now, inside any strategy scope
    return network


def load_model(path: str | os.PathLike) -> keras.Model:
    """Load a `.keras` file written by relunet, with Keras's safe_mode on (no code in the
    file runs). ReluNet is registered with Keras above, where it is defined, so this
    works whatever was imported first; so does `keras.models.load_model` once this
    module is imported."""
    return keras.models.load_model(path, safe_mode=True)
