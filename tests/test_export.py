"""SavedModel export: what TF Serving and saved_model_cli load, and how versions land."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from relunet.base.errors import RelunetError
from relunet.data.idx import read_folder
from relunet.inference.export import export_saved_model
from relunet.training.model import load_model

SAVED_MODEL_CLI = str(Path(sys.executable).with_name("saved_model_cli"))


@pytest.fixture(scope="module")
def model(trained_run):
    return load_model(str(trained_run / "best.keras"))


@pytest.fixture(scope="module")
def test_images(mnist_dir):
    return read_folder(mnist_dir).splits["test"].images[:64]


def test_serving_signature_gives_the_calibrated_softmax_and_rejects_below_the_floor(
    model, test_images, tmp_path
):
    """probabilities: softmax(logits / temperature), the temperature the run fitted; class
    is -1 exactly where the top probability is under reject_below."""
    assert model.temperature != 1.0 and model.reject_below > 0  # the run calibrated it
    version_dir = export_saved_model(model, tmp_path / "relunet", version=3)
    assert version_dir == tmp_path / "relunet" / "3"  # a version asked for lands as asked

    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    outputs = serve(images=tf.constant(test_images))
    logits = model(test_images.astype(np.float32) / 255.0).numpy()
    expected = tf.nn.softmax(logits / model.temperature).numpy()
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-6)
    rejected = expected.max(-1) < model.reject_below
    np.testing.assert_array_equal(outputs["not_a_digit"].numpy(), rejected)
    np.testing.assert_array_equal(
        outputs["class"].numpy(), np.where(rejected, -1, expected.argmax(-1))
    )
    assert serve.structured_input_signature[1]["images"] == tf.TensorSpec(
        [None, 28, 28, 1], tf.uint8, name="images"
    )


def test_versions_count_up_leftovers_go_and_an_existing_one_is_never_overwritten(
    model, small_export, tmp_path
):
    """The next version is the one after the highest (an empty folder's first is 1: the
    shared export's, below); what a killed export left (its process gone) is removed; an
    existing version is refused and left as it was. One export: each traces the reader."""
    out = tmp_path / "relunet"
    stale = out / ".incomplete-1-999999999"  # no such process
    stale.mkdir(parents=True)
    shutil.copytree(small_export / "1", out / "7")
    assert export_saved_model(model, out, verbose=False).name == "8"  # after the highest
    assert not stale.exists() and (out / "8" / "saved_model.pb").is_file()
    before = sorted(p.name for p in (out / "7").rglob("*"))
    with pytest.raises(RelunetError, match="already exists; refusing to overwrite"):
        export_saved_model(model, out, version=7)
    assert sorted(p.name for p in (out / "7").rglob("*")) == before
    assert not list(out.glob(".incomplete-*"))


def test_an_export_holds_each_signature_s_graph_once(small_export):
    """Each signature is traced once and written once: saved as a `tf.function`, it was
    traced again under `tf.saved_model.save`'s context and the reader written twice
    (the file twice the size, twice as long to export and to load)."""
    assert [p.name for p in small_export.iterdir()] == ["1"]  # an empty folder's first
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((small_export / "1" / "saved_model.pb").read_bytes())
    functions = [f.signature.name for f in saved.meta_graphs[0].graph_def.library.function]
    traced = sorted(name.split("_")[-2] for name in functions if "_serve_" in name)
    assert traced == ["bytes", "pixels"], functions
    loaded = tf.saved_model.load(str(small_export / "1"))
    assert sorted(loaded.signatures) == ["serving_bytes", "serving_default"]
    assert loaded.serving_default is not None  # the signatures are attributes too


def test_export_target_that_is_a_file_is_refused(model, tmp_path):
    target = tmp_path / "relunet"
    target.write_text("not a folder")
    with pytest.raises(RelunetError, match="is a file"):
        export_saved_model(model, target)
    assert target.read_text() == "not a folder"


@pytest.mark.slow
def test_saved_model_cli_shows_and_runs_the_signature(model, test_images, tmp_path):
    version_dir = export_saved_model(model, tmp_path / "relunet", verbose=False)
    show = subprocess.run(
        [SAVED_MODEL_CLI, "show", "--dir", str(version_dir), "--all"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert show.returncode == 0, show.stderr[-2000:]
    for expected in (
        "signature_def['serving_default']",
        "inputs['images']",
        "dtype: DT_UINT8",
        "outputs['probabilities']",
        "outputs['class']",
        "shape: (-1, 28, 28, 1)",
    ):
        assert expected in show.stdout

    np.save(tmp_path / "digits.npy", test_images[:8])
    run = subprocess.run(
        [
            SAVED_MODEL_CLI,
            "run",
            "--dir",
            str(version_dir),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--inputs",
            f"images={tmp_path / 'digits.npy'}",
            "--outdir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    probabilities = np.load(tmp_path / "out" / "probabilities.npy")
    classes = np.load(tmp_path / "out" / "class.npy")
    expected = model.probabilities(test_images[:8].astype(np.float32) / 255.0).numpy()
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    rejected = expected.max(-1) < model.reject_below
    np.testing.assert_array_equal(classes, np.where(rejected, -1, expected.argmax(-1)))
