"""Shapes of pen strokes that are not digits, drawn in TensorFlow ops a batch at a time:
half of what relunet.data.nondigits makes.

Each shape is a few strokes between vertices, SEGMENTS at most, in a box about 2 units
wide, then fitted into MNIST's 20x20 box and drawn 1 to 2 px wide, antialiased, centred
by mass. Every shape of SHAPES is made for every slot (the batch's random draws shared
among them) and one is kept per slot, so the graph has no data-dependent branches. A
shape that comes out as one thin stroke (a 1 or a 7) is replaced by a grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf

from relunet.base.mnist import IMAGE_SIZE
from relunet.imaging.transform import centred

BOX = 20  # MNIST's digits fill a 20x20 box centred in 28x28
MARGIN = 1.0  # px kept clear inside the box on each side
SEGMENTS = 16  # the most pen strokes one shape has
PEN = (0.9, 1.8)  # px from a stroke's centre line to its edge, at least and at most
THIN = 0.06  # a shape whose narrow spread is under this share of its whole is a stroke
SHAPES = (  # the kinds of stroke shapes, each made by the function of its name below
    "polyline",
    "polygon",
    "star",
    "zigzag",
    "spiral",
    "crossing",
    "grid",
    "arrow",
    "marked_ring",
    "house",
    "lattice",
    "sun",
)


def strokes(count: int, key: tf.Tensor) -> tf.Tensor:
    """float [count, 28, 28] in 0..1: shapes of pen strokes, each a random one of SHAPES
    (a grid where it came out as one thin stroke), drawn into the 20x20 box, centred by
    mass."""
    shape_key, width_key, grid_key = tf.unstack(tf.random.experimental.stateless_split(key, num=3))
    start, end, used = segments(count, shape_key)
    width = tf.random.stateless_uniform([count, 1, 1], width_key, *PEN)
    # A shape much thinner one way than the other is a stroke of a 1 or a 7: a grid (#)
    # takes its place.
    thin = _thin(start, end, used)[:, None]  # [count, 1]
    grid_start, grid_end, grid_used = segments(count, grid_key, only="grid")
    start = tf.where(thin[..., None], grid_start, start)
    end = tf.where(thin[..., None], grid_end, end)
    used = tf.where(thin, grid_used, used)
    start, end = _fitted(start, end, used)
    return centred(draw(start, end, used, width))


def _thin(start: tf.Tensor, end: tf.Tensor, used: tf.Tensor) -> tf.Tensor:
    """bool [count]: whether the used points' spread along their principal axes is under
    THIN of their whole spread one way."""
    points = tf.concat([start, end], 1)
    weights = tf.cast(tf.concat([used, used], 1)[..., None], tf.float32)
    mean = tf.reduce_sum(points * weights, 1, keepdims=True) / tf.reduce_sum(
        weights, 1, keepdims=True
    )
    d = (points - mean) * weights
    a, c = tf.reduce_mean(d[..., 0] ** 2, 1), tf.reduce_mean(d[..., 1] ** 2, 1)
    b = tf.reduce_mean(d[..., 0] * d[..., 1], 1)
    half, root = (a + c) / 2, tf.sqrt(((a - c) / 2) ** 2 + b**2)
    return (half - root) < THIN * (half + root)


def _fitted(start: tf.Tensor, end: tf.Tensor, used: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The segments moved and scaled into the 20x20 box (MARGIN inside it), centred in
    28x28, keeping the shape's aspect."""
    points = tf.concat([start, end], 1)
    mask = tf.concat([used, used], 1)[..., None]
    low = tf.reduce_min(tf.where(mask, points, 1e9), 1, keepdims=True)
    high = tf.reduce_max(tf.where(mask, points, -1e9), 1, keepdims=True)
    scale = (BOX - 2 * MARGIN) / tf.maximum(tf.reduce_max(high - low, -1, keepdims=True), 1e-3)
    centre = (low + high) / 2.0

    def place(p):
        return (p - centre) * scale + IMAGE_SIZE / 2.0

    return place(start), place(end)


@dataclass(frozen=True)
class Draws:
    """The random draws a batch's shapes share: for `count` slots, vertex and segment
    indices, and each slot's sides, phase, jitter, stroke count, aspect, roof and
    lattice points."""

    count: int
    t: tf.Tensor  # float [1, SEGMENTS + 1]: a vertex's index
    index: tf.Tensor  # int [1, SEGMENTS]: a segment's index (vertex i to i + 1)
    sides: tf.Tensor  # float [count, 1]: 3 or 4
    phase: tf.Tensor  # float [count, 1]: a turn, in radians
    noise: tf.Tensor  # float [count, SEGMENTS + 1, 2] in [-1, 1]: each vertex's jitter
    many: tf.Tensor  # float [count, 1]: 3 to 8 strokes
    aspect: tf.Tensor  # float [count, 1, 1] in [0.6, 1): a ring's height over its width
    roofed: tf.Tensor  # bool [count, 1]: a house's roof, or its diagonals
    lattice: tf.Tensor  # float [count, SEGMENTS + 1, 2]: points of a 3x3 lattice

    @property
    def lone(self) -> tf.Tensor:
        """Separate strokes: each from vertex 2i to 2i + 1."""
        return self.index % 2 == 0


def draws(count: int, key: tf.Tensor) -> tuple[tf.Tensor, Draws]:
    """(each slot's shape [count], an index into SHAPES; the draws they share)."""
    keys = tf.random.experimental.stateless_split(key, num=8)  # one for each draw
    n = SEGMENTS

    def whole(shape, low, high, k):
        return tf.random.stateless_uniform(shape, keys[k], low, high, dtype=tf.int32)

    shape = whole([count], 0, len(SHAPES), 0)
    shared = Draws(
        count=count,
        t=tf.range(n + 1, dtype=tf.float32)[None, :],
        index=tf.range(n)[None, :],
        sides=tf.cast(whole([count, 1], 3, 5, 1), tf.float32),
        phase=tf.random.stateless_uniform([count, 1], keys[2], 0.0, 2 * math.pi),
        noise=tf.random.stateless_uniform([count, n + 1, 2], keys[3], -1.0, 1.0),
        many=tf.cast(whole([count, 1], 3, 9, 4), tf.float32),
        aspect=tf.random.stateless_uniform([count, 1, 1], keys[5], 0.6, 1.0),
        roofed=tf.random.stateless_uniform([count, 1], keys[6]) < 0.5,
        lattice=tf.cast(whole([count, n + 1, 2], 0, 3, 7), tf.float32) - 1.0,
    )
    return shape, shared


def segments(
    count: int, key: tf.Tensor, only: str | None = None
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """([count, SEGMENTS, 2] starts, ends, [count, SEGMENTS] used): each slot a random
    one of SHAPES, or all of them `only` that one."""
    shape, shared = draws(count, key)
    if only is not None:
        shape = tf.fill([count], SHAPES.index(only))
    made = [_MAKE[name](shared) for name in SHAPES]
    points = tf.gather(tf.stack([p for p, _ in made], 1), shape, batch_dims=1)
    used = tf.gather(tf.stack([u for _, u in made], 1), shape, batch_dims=1)
    return points[:, :-1], points[:, 1:], used


# Each shape: (vertices [count, SEGMENTS + 1, 2], used [count, SEGMENTS]), segment i
# joining vertex i to vertex i + 1 where used.


def _ring(angle: tf.Tensor, radius: tf.Tensor | float) -> tf.Tensor:
    return tf.stack([radius * tf.cos(angle), radius * tf.sin(angle)], -1)


def _first(d: Draws, length: tf.Tensor | float) -> tf.Tensor:
    """The first `length` segments, joined in turn."""
    return tf.broadcast_to(d.index < tf.cast(length, tf.int32), [d.count, SEGMENTS])


def _polyline(d: Draws) -> tuple[tf.Tensor, tf.Tensor]:
    """3 to 8 strokes through random points."""
    return d.noise, _first(d, d.many)


def _polygon(d: Draws) -> tuple[tf.Tensor, tf.Tensor]:
    """A triangle or a square (never more sides: a hexagon is a 0 too often)."""
    return _ring(d.phase + 2 * math.pi * d.t / d.sides, 1.0) + 0.15 * d.noise, _first(d, d.sides)


def _star(d: Draws) -> tuple[tf.Tensor, tf.Tensor]:
    """A five-pointed star, drawn in one line."""
    return _ring(d.phase + 4 * math.pi * d.t / 5.0, 1.0) + 0.1 * d.noise, _first(d, 5)


def _zigzag(d: Draws) -> tuple[tf.Tensor, tf.Tensor]:
    t = d.t
    vertices = tf.stack([t / SEGMENTS * 2 - 1, tf.where(t % 2 > 0, 0.8, -0.8) + 0 * t], -1)
    return vertices + 0.15 * d.noise, _first(d, d.many)


def _spiral(d: Draws) -> tuple[tf.Tensor, tf.Tensor]:
    """12 strokes over two turns: not a 6 or a 9."""
    return _ring(d.phase + 1.2 * d.t, 0.1 + 0.9 * d.t / 12.0), _first(d, 12)


def _crossing(d: Draws) -> tuple[tf.Tensor, tf.Tensor]:
    """Three lines crossing at the middle."""
    t = d.t
    vertices = _ring(d.phase + math.pi * tf.floor(t / 2) / 3 + math.pi * (t % 2), 1.0)
    return vertices, tf.tile(d.lone & (d.index < 6), [d.count, 1])


def _grid(d: Draws) -> tuple[tf.Tensor, tf.Tensor]:
    """Two strokes across and two down (#)."""
    t = d.t
    across, at = tf.where(t % 2 > 0, 1.0, -1.0), tf.floor(t / 4) - 0.5
    down = tf.floor(t / 2) % 2 > 0
    vertices = tf.stack([tf.where(down, across, at), tf.where(down, at, across)], -1)
    return vertices + 0.1 * d.noise, tf.tile(d.lone & (d.index < 8), [d.count, 1])


def _arrow(d: Draws) -> tuple[tf.Tensor, tf.Tensor]:
    """A shaft and its two barbs."""
    n, vertex = SEGMENTS, tf.range(SEGMENTS + 1)
    xs = tf.gather([-1.0, 1.0, 1.0, 0.4, 1.0, 0.4] + [0.0] * (n - 5), vertex)
    ys = tf.gather([0.0, 0.0, 0.0, 0.5, 0.0, -0.5] + [0.0] * (n - 5), vertex)
    vertices = tf.stack([xs, ys], -1)[None] + 0.1 * d.noise
    return vertices, tf.tile(d.lone & (d.index < 6), [d.count, 1])


def _marked_ring(d: Draws) -> tuple[tf.Tensor, tf.Tensor]:
    """A ring of 10 strokes (vertices 0..10), then short marks inside it, each from vertex
    11 + 2i to 12 + 2i: dots and dashes, a face's eyes and mouth (a ring alone is a 0)."""
    t, index = d.t, d.index
    ring = _ring(d.phase + 2 * math.pi * tf.minimum(t, 10.0) / 10.0, 1.0) * tf.concat(
        [tf.ones_like(d.aspect), d.aspect], -1
    )
    starts = 0.55 * tf.roll(d.noise, 1, axis=1)
    marks = tf.where((t[..., None] % 2 == 0), starts + 0.3 * d.noise, 0.55 * d.noise)
    used = (index < 10) | ((index >= 11) & (index % 2 == 1) & (index < 16))
    return tf.where(t[..., None] <= 10, ring, marks), tf.tile(used, [d.count, 1])


def _house(d: Draws) -> tuple[tf.Tensor, tf.Tensor]:
    """A square (vertices 0..4) under a roof (4..6), or crossed by its diagonals."""
    square = [(-1.0, 1.0), (1.0, 1.0), (1.0, -0.3), (-1.0, -0.3), (-1.0, 1.0)]
    roof = [(-1.0, -0.3), (0.0, -1.2), (1.0, -0.3), (-1.0, 1.0), (-1.0, -0.3), (1.0, 1.0)]
    rest = [(0.0, 0.0)] * (SEGMENTS + 1 - len(square + roof))
    vertices = tf.constant(square + roof + rest)[None] + 0.08 * d.noise
    index = d.index
    return vertices, tf.where(d.roofed, index < 7, (index < 4) | (index == 7) | (index == 9))


def _lattice(d: Draws) -> tuple[tf.Tensor, tf.Tensor]:
    """Strokes between points of a jittered 3x3 lattice drawn at random, each from vertex
    2i to 2i + 1 (one to six of them)."""
    return d.lattice + 0.1 * d.noise, d.lone & (d.index < 2 * tf.cast(d.many, tf.int32) - 2)


def _sun(d: Draws) -> tuple[tf.Tensor, tf.Tensor]:
    """A ring of 8 strokes (vertices 0..8), then rays 9-10, 11-12, ..."""
    t, index = d.t, d.index
    ring = _ring(d.phase + 2 * math.pi * tf.minimum(t, 8.0) / 8.0, 0.55)
    ray_angle = d.phase + 2 * math.pi * tf.floor((t - 9) / 2) / 4
    rays = _ring(ray_angle, tf.where((t - 9) % 2 > 0, 1.0, 0.7))
    used = (index < 8) | ((index >= 9) & (index % 2 == 1))
    return tf.where(t[..., None] <= 8, ring, rays), tf.tile(used, [d.count, 1])


_MAKE = {
    "polyline": _polyline,
    "polygon": _polygon,
    "star": _star,
    "zigzag": _zigzag,
    "spiral": _spiral,
    "crossing": _crossing,
    "grid": _grid,
    "arrow": _arrow,
    "marked_ring": _marked_ring,
    "house": _house,
    "lattice": _lattice,
    "sun": _sun,
}


def draw(start: tf.Tensor, end: tf.Tensor, used: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """[count, 28, 28]: segments drawn antialiased, `width` px from their centre line.

    Each pixel centre's distance to the nearest point of each segment [count, segments,
    28, 28], worked out in x and y apart (the arithmetic of the vector form, so the same
    pixels, at a quarter of the cost: no [..., 2] tensors to build and reduce)."""
    centre = tf.range(IMAGE_SIZE, dtype=tf.float32) + 0.5
    px, py = centre[None, None, None, :], centre[None, None, :, None]
    ax, ay = start[:, :, None, None, 0], start[:, :, None, None, 1]
    abx, aby = end[:, :, None, None, 0] - ax, end[:, :, None, None, 1] - ay
    along = ((px - ax) * abx + (py - ay) * aby) / tf.maximum(abx * abx + aby * aby, 1e-6)
    along = tf.clip_by_value(along, 0.0, 1.0)
    dx, dy = px - (ax + along * abx), py - (ay + along * aby)
    distance = tf.where(used[:, :, None, None], tf.sqrt(dx * dx + dy * dy), 1e3)
    return tf.clip_by_value(width + 0.5 - tf.reduce_min(distance, 1), 0.0, 1.0)
