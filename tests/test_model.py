"""ReluNet and the lab's functions: the math, the custom train_step, saving."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from relunet.base.errors import RelunetError
from relunet.config import ModelConfig, OptimConfig
from relunet.imaging.transform import deskew
from relunet.training.model import ReluNet, accuracy_fn, build_model, grad, load_model, loss_fn

NO_XLA = OptimConfig(jit_compile="off")

LOGITS = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3], [1.2, 0.2, 3.1], [0.0, 0.0, 1.0]], np.float32)
LABELS = np.eye(3, dtype=np.float32)[[0, 2, 2, 1]]


def _fixed(images, training=False):
    """A 'model' that returns LOGITS whatever it is given."""
    return tf.constant(LOGITS)


def _batches(n=512, batch=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 28, 28, 1), np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
    return x, y, tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


def test_loss_fn_matches_keras_categorical_crossentropy():
    expected = keras.losses.CategoricalCrossentropy(from_logits=True)(LABELS, LOGITS)
    np.testing.assert_allclose(loss_fn(_fixed, None, LABELS), expected, rtol=1e-6)


def test_accuracy_fn_matches_numpy_argmax():
    expected = np.mean(LOGITS.argmax(-1) == LABELS.argmax(-1))  # 0.5: rows 0 and 2 agree
    assert float(accuracy_fn(_fixed, None, LABELS)) == pytest.approx(expected) == 0.5


def test_grad_returns_one_gradient_per_variable_with_its_loss_and_logits():
    model = build_model()
    x, y, _ = _batches(64)
    gradients = grad(model, x, y)
    assert len(gradients) == len(model.trainable_variables) == 6
    assert all(
        g.shape == v.shape for g, v in zip(gradients, model.trainable_variables, strict=True)
    )
    np.testing.assert_allclose(gradients.loss, loss_fn(model, x, y), rtol=1e-6)
    assert gradients.logits.shape == (64, 10)


def test_train_step_gives_the_weights_of_a_hand_written_grad_loop():
    """fit() through train_step equals the lab's loop: grad, then optimizer.apply.

    Tolerance: 1e-5 absolute on every weight after 8 Adam steps; fit() runs as a
    tf.function and the loop eagerly, so float32 rounding may differ slightly.
    """
    _, _, dataset = _batches()
    fitted = build_model(optim=NO_XLA)
    by_hand = build_model(optim=NO_XLA)
    by_hand.set_weights(fitted.get_weights())

    fitted.fit(dataset, epochs=1, verbose=0, shuffle=False)
    optimizer = keras.optimizers.Adam(1e-3)
    for images, labels in dataset:  # the lab's loop
        grads = grad(by_hand, images, labels)
        optimizer.apply(grads, by_hand.trainable_variables)

    for a, b in zip(fitted.get_weights(), by_hand.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert not np.allclose(fitted.get_weights()[0], build_model().get_weights()[0])


def test_epoch_metrics_are_per_image_means_and_evaluate_agrees_with_accuracy_fn():
    x, y, _ = _batches(n=300)  # 300 = 4 full batches of 64 and one of 44
    model = build_model()
    result = model.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    assert result["accuracy"] == pytest.approx(float(accuracy_fn(model, x, y)), abs=1e-6)
    assert result["loss"] == pytest.approx(float(loss_fn(model, x, y)), rel=1e-5)


def test_metrics_reset_between_epochs():
    _, _, dataset = _batches(n=512)
    model = build_model()
    history = model.fit(dataset, epochs=2, verbose=0, shuffle=False)
    # Each epoch's value is over its own 512 images: the trackers hold one epoch, not two.
    assert float(model.loss_tracker.count) == float(model.accuracy_tracker.count) == 512
    assert history.history["loss"][1] == pytest.approx(float(model.loss_tracker.result()))
    assert model.metrics_names == ["loss", "accuracy"]


XLA_PROBE = """
import sys, keras, numpy as np, tensorflow as tf
from pathlib import Path
from relunet.config import OptimConfig
from relunet.training.model import build_model

dump = Path(sys.argv[1])
rng = np.random.default_rng(0)
x = rng.random((256, 28, 28, 1), np.float32)
y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 256)]
weights = {}
for setting in ("off", "on"):
    keras.utils.set_random_seed(3)
    model = build_model(optim=OptimConfig(jit_compile=setting, steps_per_execution=2))
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, shuffle=False)
    weights[setting] = model.get_weights()
    print(setting, len(list(dump.glob("*"))) if dump.is_dir() else 0)
print("max_difference", max(float(np.abs(a - b).max()) for a, b in zip(*weights.values())))
"""


@pytest.mark.slow  # XLA compiles the step: 10-20 s
def test_jit_compile_on_runs_the_step_through_xla_and_trains_as_without(tmp_path):
    """XLA's own dump of the modules it compiled: none while "off" trains, some once "on"
    does; both train the same weights up to float rounding."""
    env = {**os.environ, "XLA_FLAGS": f"--xla_dump_to={tmp_path / 'dump'}"}
    result = subprocess.run(
        [sys.executable, "-c", XLA_PROBE, str(tmp_path / "dump")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    lines = dict(line.split() for line in result.stdout.splitlines())
    assert lines["off"] == "0" and int(lines["on"]) > 0, result.stderr[-2000:]
    assert float(lines["max_difference"]) < 2e-4


def test_keras_file_round_trip_keeps_architecture_weights_and_optimizer(tmp_path):
    x, _, dataset = _batches(n=128)
    config = ModelConfig(width=32, depth=3, activation="sigmoid", init="he_normal")
    model = build_model(config, NO_XLA)  # saving does not depend on XLA (2-3 s to compile)
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    model.save(tmp_path / "model.keras")

    loaded = load_model(str(tmp_path / "model.keras"))  # safe_mode stays on
    assert isinstance(loaded, ReluNet)
    assert loaded.config == config
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 2


def test_architecture_is_the_lab_s_dense_stack_with_logits_out():
    model = build_model()
    assert [layer.name for layer in model.hidden] == ["dense_0", "dense_1"]
    assert model.logits.activation is keras.activations.linear
    assert model.count_params() == 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10
    kernel = model.hidden[0].kernel.numpy()
    assert abs(kernel.std() - 0.05) < 0.002  # RandomNormal(stddev=0.05), the lab's init


def test_unknown_activation_is_refused_by_name():
    with pytest.raises(RelunetError, match="activation must be one of relu, sigmoid, leaky_relu"):
        ReluNet(ModelConfig(activation="tanh"))
    with pytest.raises(RelunetError, match="width must be a positive number"):
        ReluNet(width=0)  # as a saved model's config comes back


def test_run_eagerly_runs_the_lab_s_functions_op_by_op(monkeypatch):
    """--run-eagerly: train_step's Python runs at every step, so print() and a debugger
    see the lab's functions at work (no tf.function, no XLA)."""
    import relunet.training.model

    calls = []
    lab_loss = relunet.training.model.loss_fn

    def watched(model, images, labels, logits=None):
        calls.append(tf.executing_eagerly())
        return lab_loss(model, images, labels, logits)

    monkeypatch.setattr(relunet.training.model, "loss_fn", watched)
    _, _, dataset = _batches(n=192, batch=64)  # 3 steps
    model = build_model(ModelConfig(width=8), OptimConfig(run_eagerly=True))
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    assert calls == [True, True, True] and model.run_eagerly and not model.jit_compile


def test_dropout_drops_units_in_training_only_and_its_masks_follow_the_seed():
    x, _, _ = _batches(n=64)
    model = build_model(ModelConfig(width=64, dropout=0.5))
    eval_a, eval_b = (model(x, training=False).numpy() for _ in range(2))
    np.testing.assert_array_equal(eval_a, eval_b)  # inference: no units dropped
    train_a, train_b = (model(x, training=True).numpy() for _ in range(2))
    assert not np.allclose(train_a, train_b)  # a new mask each call
    keras.utils.set_random_seed(9)
    first = build_model(ModelConfig(width=64, dropout=0.5))(x, training=True).numpy()
    keras.utils.set_random_seed(9)
    again = build_model(ModelConfig(width=64, dropout=0.5))(x, training=True).numpy()
    np.testing.assert_array_equal(first, again)


def test_batch_norm_normalises_each_hidden_layer_and_learns_its_statistics():
    x, _, dataset = _batches(n=256)
    model = build_model(ModelConfig(width=32, depth=3, batch_norm=True))
    assert [n.name for n in model.norms] == ["batch_norm_0", "batch_norm_1", "batch_norm_2"]
    before = model.norms[0].moving_mean.numpy().copy()
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    assert not np.allclose(model.norms[0].moving_mean.numpy(), before)  # updated by training
    # In training mode each hidden unit's pre-activation is normalised over the batch.
    pre = model.norms[0](model.hidden[0](model.flatten(x)), training=True).numpy()
    np.testing.assert_allclose(pre.mean(0), model.norms[0].beta.numpy(), atol=1e-4)


@pytest.mark.parametrize("options", [{"dropout": 0.3}, {"batch_norm": True}])
def test_dropout_and_batch_norm_survive_saving(tmp_path, options):
    x, _, dataset = _batches(n=128)
    config = ModelConfig(width=16, **options)
    model = build_model(config, NO_XLA)
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    model.save(tmp_path / "m.keras")
    loaded = load_model(str(tmp_path / "m.keras"))
    assert loaded.config == config
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_deskew_makes_a_slanted_stroke_upright_inside_the_model():
    slanted = np.zeros((1, 28, 28, 1), np.float32)
    for row in range(4, 24):  # a stroke leaning right by 0.5 pixel a row
        slanted[0, row, 8 + row // 2 : 11 + row // 2] = 1.0
    upright = deskew(tf.constant(slanted)).numpy()[0, ..., 0]
    columns = np.arange(28)
    centres = [(upright[row] * columns).sum() / upright[row].sum() for row in range(4, 24)]
    assert np.ptp(centres) < 1.5  # was 10 pixels from top to bottom
    plain = build_model(ModelConfig(width=8))
    straight = build_model(ModelConfig(width=8, deskew=True))
    straight.set_weights(plain.get_weights())
    assert not np.allclose(plain(slanted), straight(slanted))
    np.testing.assert_allclose(straight(slanted), plain(deskew(tf.constant(slanted))), atol=1e-6)
    # Images without their channel axis, which the model without deskew takes too.
    np.testing.assert_allclose(straight(slanted[..., 0]), straight(slanted), atol=1e-6)
