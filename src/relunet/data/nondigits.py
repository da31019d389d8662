"""Shapes that are not digits, made in TensorFlow ops, a batch at a time: what a network
learns to be unsure about (outlier exposure, Hendrycks et al. 2019).

With `--non-digits P`, each training batch of b digits gets round(P b) of these, labelled
with no class (a uniform target over the ten), so the network learns to spread its
probability over all ten for what is not a digit, and relunet.training.calibrate's threshold
answers it "not a digit". Every one is made by this module's code from nothing but
random numbers and the batch's own MNIST digits (no font, no letter or symbol data):

  strokes    three to eight pen strokes, a triangle or a square, a star, a grid, a
             zigzag, a spiral, an arrow or crossing lines, drawn 1 to 2 px wide into
             MNIST's 20x20 box (half of them);
  fusions    two digits drawn over each other, offset, as one;
  pairs      two digits side by side squeezed into one box (a number not split).

No fragment of a digit, and no ring with more than four sides: a stroke of a digit, or a
hexagon, is a 1 or a 0 too often for "not a digit" to be the right answer for it.

Each a function of (seed, epoch, step) alone, as relunet.data.augment's distortions are.
"""

from __future__ import annotations

import math

import tensorflow as tf

from relunet.base.mnist import IMAGE_SIZE, PIXEL_MAX
from relunet.imaging.measure import centre_of_mass, span

BOX = 20  # MNIST's digits fill a 20x20 box centred in 28x28
SEGMENTS = 16  # the most pen strokes one shape has
SHAPES = 12  # kinds of stroke shapes (see _segments)
KINDS = 4  # strokes (twice as often as each of the others), fusions, pairs


def non_digits(digits: tf.Tensor, count: int, key: tf.Tensor) -> tf.Tensor:
    """uint8 [count, 28, 28, 1] shapes that are not digits, from a batch of uint8 digits
    [b, 28, 28, 1] (whose digits the fragments, fusions and pairs are made of)."""
    keys = tf.random.experimental.stateless_split(key, num=6)
    kind = tf.random.stateless_uniform([count], keys[0], 0, KINDS, dtype=tf.int32)
    x = tf.cast(digits[..., 0], tf.float32) / PIXEL_MAX
    picks = tf.random.stateless_uniform([count, 2], keys[1], 0, tf.shape(x)[0], dtype=tf.int32)
    a, b = tf.gather(x, picks[:, 0]), tf.gather(x, picks[:, 1])
    shapes = strokes(count, keys[2])
    made = tf.stack(
        [shapes, shapes, _reboxed(fusions(a, b, keys[4])), _reboxed(pairs(a, b))], axis=1
    )  # [count, KINDS, 28, 28]: each kind made for every slot, one kept
    chosen = tf.gather(made, kind, batch_dims=1)
    return tf.cast(tf.round(tf.clip_by_value(chosen, 0.0, 1.0) * PIXEL_MAX), tf.uint8)[..., None]


def strokes(count: int, key: tf.Tensor) -> tf.Tensor:
    """float [count, 28, 28] in 0..1: shapes of pen strokes (see `_segments`), drawn into
    the 20x20 box, centred by mass."""
    keys = tf.random.experimental.stateless_split(key, num=2)
    start, end, used = _segments(count, keys[0])
    width = tf.random.stateless_uniform([count, 1, 1], keys[1], 0.9, 1.8)
    # Fit the points into the box, keeping the shape's aspect.
    points = tf.concat([start, end], 1)
    mask = tf.concat([used, used], 1)[..., None]
    low = tf.reduce_min(tf.where(mask, points, 1e9), 1, keepdims=True)
    high = tf.reduce_max(tf.where(mask, points, -1e9), 1, keepdims=True)
    # A shape much thinner one way than the other (its points' spread along their
    # principal axes) is a stroke of a 1 or a 7: a grid (#) takes its place.
    weights = tf.cast(mask, tf.float32)
    mean = tf.reduce_sum(points * weights, 1, keepdims=True) / tf.reduce_sum(
        weights, 1, keepdims=True
    )
    d = (points - mean) * weights
    a, c = tf.reduce_mean(d[..., 0] ** 2, 1), tf.reduce_mean(d[..., 1] ** 2, 1)
    b = tf.reduce_mean(d[..., 0] * d[..., 1], 1)
    half, root = (a + c) / 2, tf.sqrt(((a - c) / 2) ** 2 + b**2)
    thin = ((half - root) < 0.06 * (half + root))[:, None]  # [count, 1]
    grid_start, grid_end, grid_used = _segments(count, keys[0], only=6)
    start = tf.where(thin[..., None], grid_start, start)
    end = tf.where(thin[..., None], grid_end, end)
    used = tf.where(thin, grid_used, used)
    points = tf.concat([start, end], 1)
    mask = tf.concat([used, used], 1)[..., None]
    low = tf.reduce_min(tf.where(mask, points, 1e9), 1, keepdims=True)
    high = tf.reduce_max(tf.where(mask, points, -1e9), 1, keepdims=True)
    scale = (BOX - 2.0) / tf.maximum(tf.reduce_max(high - low, -1, keepdims=True), 1e-3)
    centre = (low + high) / 2.0
    place = lambda p: (p - centre) * scale + IMAGE_SIZE / 2.0  # noqa: E731
    drawn = _draw(place(start), place(end), used, width)
    return _centred(drawn)


def _segments(
    count: int, key: tf.Tensor, only: int | None = None
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """([count, SEGMENTS, 2] starts, ends, [count, SEGMENTS] used): each shape a random
    one of: a polyline through random points, a triangle or a square, a star, a zigzag,
    a spiral, crossing lines, a grid, an arrow, a ring with marks inside it (never a
    ring alone: that is a 0), a square under a roof or crossed, strokes between the
    points of a 3x3 lattice, a ring with rays."""
    keys = tf.random.experimental.stateless_split(key, num=7)
    shape = tf.random.stateless_uniform([count], keys[0], 0, SHAPES, dtype=tf.int32)
    if only is not None:  # one kind for all (6: the grid)
        shape = tf.fill([count], only)
    n = SEGMENTS
    t = tf.range(n + 1, dtype=tf.float32)[None, :]  # vertex index
    sides = tf.cast(
        tf.random.stateless_uniform([count, 1], keys[1], 3, 5, dtype=tf.int32), tf.float32
    )
    phase = tf.random.stateless_uniform([count, 1], keys[2], 0.0, 2 * math.pi)
    noise = tf.random.stateless_uniform([count, n + 1, 2], keys[3], -1.0, 1.0)
    many = tf.cast(
        tf.random.stateless_uniform([count, 1], keys[4], 3, 9, dtype=tf.int32), tf.float32
    )

    def ring(angle, radius):
        return tf.stack([radius * tf.cos(angle), radius * tf.sin(angle)], -1)

    polyline = noise  # random points, joined in turn
    polygon = ring(phase + 2 * math.pi * t / sides, 1.0) + 0.15 * noise
    star = ring(phase + 4 * math.pi * t / 5.0, 1.0) + 0.1 * noise
    zigzag = tf.stack([t / n * 2 - 1, tf.where(t % 2 > 0, 0.8, -0.8) + 0 * t], -1) + 0.15 * noise
    spiral = ring(phase + 1.2 * t, 0.1 + 0.9 * t / 12.0)  # over two turns: not a 6 or a 9
    vertices = [polyline, polygon, star, zigzag, spiral]
    connected = [tf.ones([count, n], tf.bool)] * 5
    # Separate strokes: crossing lines, a grid (#), an arrow; each stroke from vertex 2i
    # to 2i + 1.
    lone = tf.range(n)[None, :] % 2 == 0
    crossing = ring(phase + math.pi * tf.floor(t / 2) / 3 + math.pi * (t % 2), 1.0)
    grid = (
        tf.stack(
            [
                tf.where(
                    tf.floor(t / 2) % 2 > 0, tf.where(t % 2 > 0, 1.0, -1.0), tf.floor(t / 4) - 0.5
                ),
                tf.where(
                    tf.floor(t / 2) % 2 > 0, tf.floor(t / 4) - 0.5, tf.where(t % 2 > 0, 1.0, -1.0)
                ),
            ],
            -1,
        )
        + 0.1 * noise
    )
    arrow = (
        tf.stack(
            [
                tf.gather([-1.0, 1.0, 1.0, 0.4, 1.0, 0.4] + [0.0] * (n - 5), tf.range(n + 1)),
                tf.gather([0.0, 0.0, 0.0, 0.5, 0.0, -0.5] + [0.0] * (n - 5), tf.range(n + 1)),
            ],
            -1,
        )[None]
        + 0.1 * noise
    )
    vertices += [crossing, grid, arrow]
    for strokes_drawn in (6, 8, 6):  # crossing lines, the grid, the arrow
        only = lone & (tf.range(n)[None, :] < strokes_drawn)
        connected.append(tf.tile(only, [count, 1]))
    index = tf.range(n)[None, :]
    # A ring of 10 strokes (vertices 0..10), then marks inside it, each a stroke from
    # vertex 11 + 2i to 12 + 2i: dots, dashes, a smile.
    aspect = tf.random.stateless_uniform([count, 1, 1], keys[5], 0.6, 1.0)
    ring_part = ring(phase + 2 * math.pi * tf.minimum(t, 10.0) / 10.0, 1.0) * tf.concat(
        [tf.ones_like(aspect), aspect], -1
    )
    # Marks are short: dots and dashes (a face's eyes and mouth), not lines across it.
    starts = 0.55 * tf.roll(noise, 1, axis=1)
    marks = tf.where((t[..., None] % 2 == 0), starts + 0.3 * noise, 0.55 * noise)
    marked = tf.where(t[..., None] <= 10, ring_part, marks)
    vertices.append(marked)
    connected.append(
        tf.tile((index < 10) | ((index >= 11) & (index % 2 == 1) & (index < 16)), [count, 1])
    )
    # A square (vertices 0..4) under a roof (4..6) or crossed by its diagonals.
    square = [(-1.0, 1.0), (1.0, 1.0), (1.0, -0.3), (-1.0, -0.3), (-1.0, 1.0)]
    roof = [(-1.0, -0.3), (0.0, -1.2), (1.0, -0.3), (-1.0, 1.0), (-1.0, -0.3), (1.0, 1.0)]
    house = tf.constant(square + roof + [(0.0, 0.0)] * (n + 1 - 11))[None] + 0.08 * noise
    vertices.append(house)
    roofed = tf.random.stateless_uniform([count, 1], keys[6]) < 0.5
    connected.append(tf.where(roofed, index < 7, (index < 4) | (index == 7) | (index == 9)))
    # Strokes between neighbouring points of a jittered 3x3 lattice: each from vertex
    # 2i to 2i + 1, lattice points drawn at random (4 to 7 strokes).
    lattice = (
        tf.cast(
            tf.random.stateless_uniform([count, n + 1, 2], keys[4], 0, 3, dtype=tf.int32),
            tf.float32,
        )
        - 1.0
    )
    vertices.append(lattice + 0.1 * noise)
    connected.append(lone & (index < 2 * tf.cast(many[:, :1], tf.int32) - 2))
    # A ring of 8 strokes with rays: vertices 0..8 the ring, then rays 9-10, 11-12, ...
    sun_ring = ring(phase + 2 * math.pi * tf.minimum(t, 8.0) / 8.0, 0.55)
    ray_angle = phase + 2 * math.pi * tf.floor((t - 9) / 2) / 4
    rays = ring(ray_angle, tf.where((t - 9) % 2 > 0, 1.0, 0.7))
    vertices.append(tf.where(t[..., None] <= 8, sun_ring, rays))
    connected.append(tf.tile((index < 8) | ((index >= 9) & (index % 2 == 1)), [count, 1]))
    points = tf.gather(tf.stack(vertices, 1), shape, batch_dims=1)  # [count, n + 1, 2]
    used = tf.gather(tf.stack(connected, 1), shape, batch_dims=1)  # [count, n]
    # Polylines, zigzags and spirals use `many` segments; polygons and stars close.
    length = tf.gather(
        tf.concat([many, sides, tf.fill([count, 1], 5.0), many, tf.fill([count, 1], 12.0)], 1),
        tf.minimum(shape, 4),
        batch_dims=1,
    )
    ordered = shape < 5
    used = tf.where(
        ordered[:, None], tf.range(n)[None, :] < tf.cast(length[:, None], tf.int32), used
    )
    return points[:, :-1], points[:, 1:], used


def _draw(start: tf.Tensor, end: tf.Tensor, used: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """[count, 28, 28]: segments drawn antialiased, `width` px from their centre line."""
    grid = tf.stack(
        tf.meshgrid(tf.range(IMAGE_SIZE, dtype=tf.float32), tf.range(IMAGE_SIZE, dtype=tf.float32)),
        -1,
    )  # [28, 28, 2] as (x, y)
    p = grid[None, None] + 0.5  # [1, 1, 28, 28, 2]
    a, b = start[:, :, None, None, :], end[:, :, None, None, :]
    ab = b - a
    along = tf.reduce_sum((p - a) * ab, -1) / tf.maximum(tf.reduce_sum(ab * ab, -1), 1e-6)
    nearest = a + tf.clip_by_value(along, 0.0, 1.0)[..., None] * ab
    distance = tf.norm(p - nearest, axis=-1)  # [count, segments, 28, 28]
    distance = tf.where(used[:, :, None, None], distance, 1e3)
    return tf.clip_by_value(width + 0.5 - tf.reduce_min(distance, 1), 0.0, 1.0)


def fusions(a: tf.Tensor, b: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
    """[n, 28, 28]: digit b drawn over digit a, moved 5 to 9 px sideways and up to 4 down."""
    n = tf.shape(a)[0]
    keys = tf.random.experimental.stateless_split(key, num=2)
    dx = tf.random.stateless_uniform([n], keys[0], 5, 10, dtype=tf.int32)
    dx = dx * tf.where(tf.random.stateless_uniform([n], keys[1]) < 0.5, -1, 1)
    dy = tf.random.stateless_uniform([n], keys[1], -4, 5, dtype=tf.int32)
    moved = tf.map_fn(
        lambda args: tf.roll(args[0], shift=[args[2], args[1]], axis=[0, 1]),
        (b, dx, dy),
        fn_output_signature=tf.float32,
    )
    return tf.maximum(a, moved)


def pairs(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """[n, 28, 56]: digits a and b side by side, touching, as a number written close."""
    return tf.concat([a[:, :, 4:24], b[:, :, 4:24]], axis=2)


def _reboxed(images: tf.Tensor) -> tf.Tensor:
    """[n, 28, 28]: each image's ink cropped to a square around it, scaled into the 20x20
    box and centred by mass, as MNIST's digits were made."""
    h, w = tf.shape(images)[1], tf.shape(images)[2]
    ink = images > 0.1
    rows, cols = tf.reduce_any(ink, 2), tf.reduce_any(ink, 1)

    def ends(flags):  # [n] first and one past the last inked row (or column), floats
        low, high = span(flags)
        return tf.cast(low, tf.float32), tf.cast(tf.maximum(high, low + 1), tf.float32)

    top, bottom = ends(rows)
    left, right = ends(cols)
    side = tf.maximum(bottom - top, right - left)
    cy, cx = (top + bottom) / 2, (left + right) / 2
    hf, wf = tf.cast(h - 1, tf.float32), tf.cast(w - 1, tf.float32)
    boxes = tf.stack(
        [(cy - side / 2) / hf, (cx - side / 2) / wf, (cy + side / 2) / hf, (cx + side / 2) / wf], 1
    )
    boxed = tf.image.crop_and_resize(
        images[..., None], boxes, tf.range(tf.shape(images)[0]), [BOX, BOX]
    )[..., 0]
    margin = (IMAGE_SIZE - BOX) // 2
    return _centred(tf.pad(boxed, [[0, 0], [margin, margin], [margin, margin]]))


def _centred(images: tf.Tensor) -> tf.Tensor:
    """[n, 28, 28] moved by whole pixels so that each centre of mass is the centre."""
    row, col = centre_of_mass(images)
    middle = (IMAGE_SIZE - 1) / 2.0
    dy = tf.cast(tf.round(middle - row), tf.int32)
    dx = tf.cast(tf.round(middle - col), tf.int32)
    return tf.map_fn(
        lambda args: tf.roll(args[0], shift=[args[1], args[2]], axis=[0, 1]),
        (images, dy, dx),
        fn_output_signature=tf.float32,
    )
