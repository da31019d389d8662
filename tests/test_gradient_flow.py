"""The lab's lesson, measured: gradient norms in train_step, and relunet compare."""

import json

import pytest
import tensorflow as tf
from helpers import run_cli

from relunet import data
from relunet.config import CompareConfig, ModelConfig
from relunet.experiments.compare import run_one
from relunet.training.model import build_model, grad, load_model

SLICE = dict(train_split="train[:5000]", val_split="train[50000:51000]", test_split="test[:1000]")


@pytest.fixture(scope="module")
def batch(source):
    (raw,) = data.load_tfds(source, ["test[:128]"])
    return next(iter(data.evaluation_pipeline(data.load_arrays(raw), batch_size=128)))


def test_reported_grad_norms_equal_norms_of_grad_on_the_same_batch(batch):
    images, labels = batch
    model = build_model(ModelConfig(depth=3, activation="sigmoid"), grad_norms=True)
    gradients = grad(model, images, labels)  # by hand, before the step changes weights
    by_variable = {id(v): g for v, g in zip(model.trainable_variables, gradients, strict=True)}
    expected = {
        f"grad_norm/{layer.name}": float(tf.norm(by_variable[id(layer.kernel)]))
        for layer in model.dense_layers
    }

    logs = model.train_on_batch(images, labels, return_dict=True)
    assert set(expected) == {
        "grad_norm/dense_0",
        "grad_norm/dense_1",
        "grad_norm/dense_2",
        "grad_norm/logits",
    }
    for name, value in expected.items():
        assert logs[name] == pytest.approx(value, rel=1e-5)


def test_grad_norms_are_off_by_default_and_survive_saving(batch, tmp_path):
    images, labels = batch
    plain = build_model()
    assert set(plain.train_on_batch(images, labels, return_dict=True)) == {"loss", "accuracy"}
    assert len(plain.metrics) == 2

    diagnosed = build_model(grad_norms=True)
    diagnosed.train_on_batch(images, labels)
    diagnosed.save(tmp_path / "m.keras")
    assert load_model(str(tmp_path / "m.keras")).grad_norms is True
    # Validation reports only loss and accuracy, never a val_grad_norm.
    assert set(diagnosed.evaluate(images, labels, verbose=0, return_dict=True)) == {
        "loss",
        "accuracy",
    }


def test_deep_sigmoid_gets_a_vanishing_first_layer_gradient_and_learns_less(source):
    """Same data, order and seed; only the activation differs. Observed here: the first
    layer's gradient norm in epoch 1 is about 10,000x smaller with sigmoid."""
    config = CompareConfig(**SLICE, epochs=1, verbose=0)
    splits = data.Splits(
        *(
            data.load_arrays(d)
            for d in data.load_tfds(
                source, [config.train_split, config.val_split, config.test_split]
            )
        ),
        source,
    )
    layers = dict(depth=6, width=256, init="random_normal", dropout=0.0, batch_norm=False)
    relu = run_one(config, {**layers, "activation": "relu"}, config.seed, splits)
    sigmoid = run_one(config, {**layers, "activation": "sigmoid"}, config.seed, splits)

    ratio = relu["grad_norm_first_layer_first_epoch"] / sigmoid["grad_norm_first_layer_first_epoch"]
    assert ratio >= 10
    assert relu["val_accuracy"] > sigmoid["val_accuracy"]


@pytest.mark.slow
def test_train_grad_norms_flag_adds_columns_to_the_history(tmp_path, source):
    result = run_cli(
        "train",
        "--grad-norms",
        "--train-split",
        "train[:1000]",
        "--val-split",
        "train[50000:50200]",
        "--test-split",
        "test[:200]",
        "--epochs",
        "1",
        "--run-dir",
        str(tmp_path / "run"),
        "--verbose",
        "0",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    header = (tmp_path / "run" / "history.csv").read_text().splitlines()[0].split(",")
    assert {"grad_norm/dense_0", "grad_norm/dense_1", "grad_norm/logits"} <= set(header)


@pytest.mark.slow
def test_compare_on_a_tiny_slice_writes_results_and_real_pngs(tmp_path, source):
    out = tmp_path / "compare"
    result = run_cli(
        "compare",
        "--activations",
        "relu,sigmoid",
        "--depths",
        "1,3",
        "--epochs",
        "1",
        "--train-split",
        "train[:500]",
        "--val-split",
        "train[50000:50200]",
        "--test-split",
        "test[:200]",
        "--out",
        str(out),
        "--verbose",
        "0",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads((out / "results.json").read_text())
    assert [(r["activation"], r["depth"]) for r in rows] == [
        ("relu", 1),
        ("sigmoid", 1),
        ("relu", 3),
        ("sigmoid", 3),
    ]
    assert all(len(r["history"]["grad_norm/dense_0"]) == 1 for r in rows)
    assert (
        (out / "results.csv").read_text().startswith("activation,depth,val_accuracy,test_accuracy")
    )
    assert [len(r["grad_norms_at_init"]) for r in rows] == [2, 2, 4, 4]  # hidden + logits
    # At depth 3 the first step's gradient shrinks from the logits toward the input
    # far more with sigmoid than with ReLU: the lesson, in the numbers the plot draws.
    relu3, sigmoid3 = rows[2]["grad_norms_at_init"], rows[3]["grad_norms_at_init"]
    assert sigmoid3[0] / sigmoid3[-1] < relu3[0] / relu3[-1]
    for name in (
        "first_step_grad_norms.png",
        "activation_derivatives.png",
        "val_accuracy.png",
        "grad_norms.png",
        "test_accuracy.png",
    ):
        png = (out / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
        assert tf.io.decode_png(png).shape[0] > 300  # a real picture, not a stub
    assert "sigmoid     3" in result.stdout


def test_compare_refuses_an_output_folder_that_holds_files(tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    result = run_cli("compare", "--out", str(tmp_path))
    assert result.returncode == 2 and "already holds something" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]
