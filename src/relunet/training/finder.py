"""The finder: where each digit of a row is, learned, so that digits that lean, crowd and
touch are told apart where no rule about gaps and columns could.

A row of writing (relunet.imaging.rows: 28 px tall, the ink 20) is read column by
column. The lab's dense ReLU layers are applied to every window of the row's columns
(a 1-D convolution is exactly a Dense layer applied to each window: the first sees 8
columns of 28 pixels, 224 inputs; the ones above see 5 windows of the layer below, two
of them spread out by dilation, so the top sees 64 columns, about three digits), and a
Dense layer on each frame (every FRAME columns) says what is centred there: nothing,
a digit, something that is not a digit, a decimal point or a minus sign, and how far
from the frame's centre. It is trained like the digit model, through `train_step` and
the lab's `grad`, on rows drawn from MNIST's training digits (relunet.data.rows).

Where the finder says the digits are, relunet.reading.cuts cuts the page's ink, and the
digit model reads each piece.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from relunet.base.mnist import DIGIT, ITEM_KINDS, MINUS, NOTHING, OTHER, POINT
from relunet.training.model import grad

KINDS = ITEM_KINDS  # what a frame holds at its centre: NOTHING, DIGIT, OTHER, POINT, MINUS
FRAME = 2  # columns per frame: the first layer's stride
CHANNELS = (96, 128, 128, 128)
CENTRED = 0.5  # a frame holds something when the probability of nothing is under this
OFFSET_WEIGHT = 1.0  # the offset's squared error (in frames), beside the kinds' loss
FOUND_WEIGHT = 2.0  # frames holding a centre weigh this much more in the kinds' loss


def finder_loss(model: keras.Model, rows: tf.Tensor, items: dict, logits=None) -> tf.Tensor:
    """Cross-entropy of each frame's kind (frames holding a centre weighted up: they are
    few) plus the squared error of the offset where a centre is; the targets made from
    the rows' items (relunet.data.rows: `kinds` and `centres` [b, MAX_ITEMS])."""
    kinds, offsets = logits if logits is not None else model(rows, training=True)
    target = frame_targets(items["kinds"], items["centres"], tf.shape(kinds)[1])
    found = tf.cast(target["kinds"] > NOTHING, tf.float32)
    entropy = keras.losses.sparse_categorical_crossentropy(target["kinds"], kinds, from_logits=True)
    weighted = tf.reduce_mean(entropy * (1.0 + FOUND_WEIGHT * found))
    error = tf.reduce_sum(found * (offsets - target["offsets"]) ** 2)
    return weighted + OFFSET_WEIGHT * error / tf.maximum(tf.reduce_sum(found), 1.0)


@keras.saving.register_keras_serializable(package="relunet")
class Finder(keras.Model):
    """Conv1D(8, stride FRAME) -> Conv1D(5) -> Conv1D(5, dilation 2) -> Conv1D(5, dilation
    4), ReLU after each, then per frame Dense(KINDS) logits and Dense(1) offset."""

    def __init__(self, channels: tuple[int, ...] = CHANNELS, other_above: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.channels = tuple(channels)
        # Set by relunet.training.reader once trained: something is "not a digit" only
        # where its probability reaches this (calibrated on the validation split).
        self.other_above = float(other_above)
        shapes = ((8, 1), (5, 1), (5, 2), (5, 4))  # (window, dilation) of each layer
        self.windows = [
            keras.layers.Conv1D(
                units,
                size,
                strides=FRAME if i == 0 else 1,
                dilation_rate=dilation,
                padding="same",
                kernel_initializer="he_normal",
                name=f"windows_{i}",
            )
            for i, (units, (size, dilation)) in enumerate(zip(self.channels, shapes, strict=True))
        ]
        self.kinds = keras.layers.Dense(KINDS, name="kinds")
        self.offsets = keras.layers.Dense(1, name="offsets")
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def build(self, input_shape=(None, 28, None)) -> None:
        self.call(tf.zeros([1, input_shape[1], 64]))
        self.built = True

    def call(self, rows: tf.Tensor, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        """rows [b, 28, w] in 0..1 -> (kind logits [b, w / FRAME, KINDS], offsets [b, w /
        FRAME] in frames from each frame's centre)."""
        x = tf.transpose(rows, [0, 2, 1])  # columns as steps, their 28 pixels as features
        for layer in self.windows:
            x = tf.nn.relu(layer(x))
        return self.kinds(x), self.offsets(x)[..., 0]

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.loss_tracker]

    def train_step(self, data):
        rows, items = data
        # Forward and backward pass: the lab's grad(), with the finder's loss.
        gradients = grad(self, rows, items, loss=finder_loss)
        self.optimizer.apply(gradients, self.trainable_variables)
        self.loss_tracker.update_state(gradients.loss)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data):
        rows, items = data
        self.loss_tracker.update_state(finder_loss(self, rows, items, self(rows)))
        return {"loss": self.loss_tracker.result()}

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "channels": list(self.channels),
            "other_above": self.other_above,
        }


def frame_targets(kinds: tf.Tensor, centres: tf.Tensor, frames: int) -> dict[str, tf.Tensor]:
    """The finder's targets from rows' items (relunet.data.rows: kinds [b, n], NOTHING
    where no item is; centres [b, n] in columns): each frame's kind [b, frames] (two
    centres in one frame: the larger kind) and its centre's offset [b, frames] in frames
    from the frame's centre."""
    b, n = tf.shape(kinds)[0], tf.shape(kinds)[1]
    used = kinds > NOTHING
    at = tf.cast(tf.floor(centres / FRAME), tf.int32)
    frame = tf.clip_by_value(at, 0, frames - 1)
    where = tf.boolean_mask(tf.stack([tf.tile(tf.range(b)[:, None], [1, n]), frame], -1), used)
    kind = tf.tensor_scatter_nd_max(
        tf.zeros([b, frames], tf.int32), where, tf.boolean_mask(kinds, used)
    )
    offset = centres / FRAME - (tf.cast(at, tf.float32) + 0.5)
    offsets = tf.tensor_scatter_nd_update(
        tf.zeros([b, frames]), where, tf.boolean_mask(offset, used)
    )
    return {"kinds": kind, "offsets": offsets}


def centres_of(
    kinds: tf.Tensor, offsets: tf.Tensor, other_above: float | tf.Tensor = 0.5
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """What one row's frames hold, from the finder's outputs for it (kind logits [frames,
    KINDS], offsets [frames]): (centres float [k] in columns, left to right; kinds int32
    [k]; the probability of each kind float [k, KINDS]) of the frames where something is
    centred: the probability of nothing under CENTRED and no neighbour more sure. A
    centre is OTHER (not a digit) only where that reaches `other_above`; else the likelier
    of the rest."""
    p = tf.nn.softmax(kinds, -1)
    sure = 1.0 - p[:, NOTHING]
    left = tf.concat([[-1.0], sure[:-1]], 0)
    right = tf.concat([sure[1:], [-1.0]], 0)
    peak = (sure >= 1.0 - CENTRED) & (sure >= left) & (sure > right)
    at = tf.where(peak)[:, 0]
    frame = tf.cast(at, tf.float32)
    centre = (frame + 0.5 + tf.gather(offsets, at)) * FRAME
    probabilities = tf.gather(p, at)
    other = probabilities[:, OTHER] >= other_above
    readable = tf.one_hot([DIGIT, POINT, MINUS], KINDS, dtype=p.dtype)  # the rest
    rest = probabilities * tf.reduce_sum(readable, 0)
    kind = tf.where(other, OTHER, tf.argmax(rest, -1, output_type=tf.int32))
    return centre, kind, probabilities
