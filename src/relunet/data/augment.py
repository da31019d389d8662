"""Random distortions of training digits, in TensorFlow ops, a batch at a time.

MNIST's digits are centred, upright and of one stroke width; the digits people write
are not. `distort(images, key, config)` takes a batch of uint8 images [b, 28, 28, 1]
and returns it distorted, each image independently:

  thickness  a grey-level blend toward a 3x3 dilation (thicker strokes) or erosion
             (thinner) by a fraction drawn from [-thickness, thickness];
  affine     rotation, scale, aspect, shear and translation about the image centre;
  elastic    Simard et al. (2003): a uniform [-1, 1] displacement field per axis,
             smoothed by a Gaussian of `elastic_sigma` pixels, scaled by
             `elastic_alpha` pixels;

then a single bilinear resampling at the affine and elastic coordinates (zeros outside),
so each image is interpolated once. An image is distorted with probability `augment`
and otherwise left exactly as it is.

Every random draw is a stateless op of `key`, which `batch_key(seed, epoch, step)` makes
from the run's seed and the batch's place: a run is bitwise reproducible, and a run
resumed in the middle of an epoch distorts its remaining batches as an uninterrupted
run would.
"""

from __future__ import annotations

import math

import tensorflow as tf

from relunet.base.mnist import IMAGE_SIZE, PIXEL_MAX
from relunet.config import AugmentConfig
from relunet.imaging.morphology import dilate3, erode3
from relunet.imaging.transform import bilinear_sample


def batch_key(seed: tf.Tensor, epoch: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
    """The stateless key of one batch's distortions: a function of (seed, epoch, step)
    alone (the shuffle's key, [seed, epoch], is another)."""
    key = tf.stack([tf.cast(seed, tf.int64), tf.constant(0x5EED, tf.int64)])
    key = tf.random.experimental.stateless_fold_in(key, tf.cast(epoch, tf.int64))
    return tf.random.experimental.stateless_fold_in(key, tf.cast(step, tf.int64))


def distort(images: tf.Tensor, key: tf.Tensor, config: AugmentConfig) -> tf.Tensor:
    """uint8 [b, 28, 28, 1] -> uint8 [b, 28, 28, 1], distorted as the module says."""
    b = tf.shape(images)[0]
    keys = tf.random.experimental.stateless_split(key, num=6)
    x = tf.cast(images[..., 0], tf.float32)
    chosen = tf.random.stateless_uniform([b], keys[0]) < config.augment
    on = tf.cast(chosen, tf.float32)

    def uniform(k: int, columns: int) -> tf.Tensor:  # [b, columns] in [-1, 1], 0 if not chosen
        return tf.random.stateless_uniform([b, columns], keys[k], -1.0, 1.0) * on[:, None]

    if config.thickness > 0:
        x = change_thickness(x, uniform(1, 1)[:, 0] * config.thickness)
    draws = uniform(2, 4)
    angle = draws[:, 0] * config.rotation * math.pi / 180.0
    scale = 1.0 + draws[:, 1] * config.scale
    aspect = tf.pow(1.0 + config.aspect, draws[:, 2])
    shear = draws[:, 3] * config.shear
    translate = uniform(3, 2) * config.translate
    xs, ys = _affine_coordinates(angle, scale * aspect, scale / aspect, shear, translate)
    if config.elastic_alpha > 0:
        noise = tf.random.stateless_uniform([2, b, IMAGE_SIZE, IMAGE_SIZE], keys[4], -1.0, 1.0)
        smooth = gaussian_matrix(IMAGE_SIZE, config.elastic_sigma)
        field = tf.einsum("ij,cbjk,lk->cbil", smooth, noise, smooth) * config.elastic_alpha
        field = field * on[None, :, None, None]
        xs, ys = xs + field[0], ys + field[1]
    out = tf.where(chosen[:, None, None], bilinear_sample(x, xs, ys), x)
    return tf.cast(tf.clip_by_value(tf.round(out), 0.0, PIXEL_MAX), tf.uint8)[..., None]


def _affine_coordinates(angle, sx, sy, shear, translate) -> tuple[tf.Tensor, tf.Tensor]:
    """Where each output pixel samples the input: p -> c + A^-1 (p - c - t), with
    A = rotation(angle) @ [[1, shear], [0, 1]] @ diag(sx, sy) about the centre c."""
    cos, sin = tf.cos(angle), tf.sin(angle)
    a00, a01 = cos * sx, (cos * shear - sin) * sy
    a10, a11 = sin * sx, (sin * shear + cos) * sy
    det = a00 * a11 - a01 * a10
    i00, i01, i10, i11 = (v[:, None, None] / det[:, None, None] for v in (a11, -a01, -a10, a00))
    centre = (IMAGE_SIZE - 1) / 2.0
    grid = tf.range(IMAGE_SIZE, dtype=tf.float32) - centre
    px = grid[None, None, :] - translate[:, 0, None, None]  # [b, 1, 28]
    py = grid[None, :, None] - translate[:, 1, None, None]  # [b, 28, 1]
    return centre + i00 * px + i01 * py, centre + i10 * px + i11 * py


def change_thickness(x: tf.Tensor, amount: tf.Tensor) -> tf.Tensor:
    """Grey images [b, h, w]; `amount` [b] in [-1, 1]: above 0 a blend toward a 3x3 grey
    dilation (thicker strokes), below 0 toward a 3x3 grey erosion (thinner)."""
    dilated, eroded = dilate3(x), erode3(x)
    a = amount[:, None, None]
    return tf.where(a >= 0, x + a * (dilated - x), x - a * (eroded - x))


def gaussian_matrix(n: int, sigma: float, truncate: float = 4.0) -> tf.Tensor:
    """[n, n] matrix G such that G @ v is v convolved with a normalised Gaussian of std
    `sigma`, zeros beyond the edges (scipy.ndimage.gaussian_filter, mode="constant")."""
    radius = int(truncate * sigma + 0.5)
    taps = tf.exp(-0.5 * (tf.range(-radius, radius + 1, dtype=tf.float32) / sigma) ** 2)
    taps = taps / tf.reduce_sum(taps)
    offset = tf.range(n)[None, :] - tf.range(n)[:, None] + radius
    inside = (offset >= 0) & (offset <= 2 * radius)
    return tf.where(inside, tf.gather(taps, tf.clip_by_value(offset, 0, 2 * radius)), 0.0)
