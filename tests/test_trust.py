"""Which SavedModels `predict` and `evaluate` run: relunet's own, or any with --trust-model."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import error_lines, run_cli

from relunet.base.signatures import SIGNATURE
from relunet.config import ModelConfig
from relunet.inference.export import export_saved_model
from relunet.inference.trust import ALLOWED_OPS, signature_ops
from relunet.training.model import build_model


@pytest.mark.parametrize(
    "options",
    [
        {"activation": "relu"},
        # Each export takes 4-5 s: the other options in the full suite only.
        *(
            pytest.param(o, marks=pytest.mark.slow)
            for o in (
                {"activation": "sigmoid"},
                {"activation": "leaky_relu"},
                {"dropout": 0.2, "batch_norm": True},
                {"deskew": True},
            )
        ),
    ],
    ids=lambda o: ",".join(map(str, o.values())),
)
def test_relunet_s_own_exports_use_only_allowed_ops(tmp_path, options, request):
    if options == {"activation": "relu"}:  # the default network: the run's shared export
        version = request.getfixturevalue("small_export") / "1"
    else:
        version = export_saved_model(
            build_model(ModelConfig(width=8, **options)), tmp_path / "m", verbose=False
        )
    ops = signature_ops(version, SIGNATURE)  # both signatures: pixels and encoded images
    assert {"MatMul", "Softmax", "DecodeImage"} <= ops  # the walk reaches into called functions
    assert ops <= ALLOWED_OPS, ops - ALLOWED_OPS


class _WritesAFile(tf.Module):
    """A model whose serving function also writes a file: what a hostile SavedModel can do."""

    def __init__(self, target):
        super().__init__()
        self.target = str(target)

    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.uint8, name="images")])
    def serve(self, images):
        tf.io.write_file(self.target, "written by the model")
        probabilities = tf.ones([tf.shape(images)[0], 10]) / 10.0
        return {"probabilities": probabilities, "class": tf.argmax(probabilities, -1)}


@pytest.mark.slow
def test_a_saved_model_that_writes_files_runs_only_when_trusted(tmp_path):
    target = tmp_path / "written.txt"
    module = _WritesAFile(target)
    tf.saved_model.save(
        module, str(tmp_path / "hostile" / "1"), signatures={SIGNATURE: module.serve}
    )
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 13:16] = 255  # a 1: ink the model is run on (a blank input runs nothing)
    np.save(tmp_path / "digit.npy", digit)

    refused = run_cli("predict", "--model", str(tmp_path / "hostile"), str(tmp_path / "digit.npy"))
    assert refused.returncode == 2
    (line,) = error_lines(refused)
    assert "runs ops that relunet's exports never do (WriteFile)" in line
    assert "--trust-model" in line
    assert not target.exists()

    trusted = run_cli(
        "predict",
        "--trust-model",
        "--model",
        str(tmp_path / "hostile"),
        str(tmp_path / "digit.npy"),
    )
    assert trusted.returncode == 0, trusted.stderr[-2000:]
    assert target.read_text() == "written by the model"
