"""Bad input, command by command: exit status 2, one line naming the problem, nothing
the user had is changed.

Each case runs the real `relunet` in a subprocess, in a folder that holds files the
user cares about; the folder's content is compared before and after.
"""

import gzip
import hashlib
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import write_idx_folder


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, trained_run):
    """A user's folder: notes, a finished run, an export, images and arrays, odd files."""
    root = tmp_path_factory.mktemp("workspace")
    (root / "notes.txt").write_text("precious")
    shutil.copytree(trained_run, root / "run")
    shutil.copytree(trained_run, root / "saved" / "1")  # stands in for an existing version
    np.save(root / "digits.npy", np.zeros((2, 28, 28), np.uint8))
    np.save(root / "wrong_shape.npy", np.zeros((3, 32, 32), np.uint8))
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n and then nothing")
    (root / "fake.keras").write_text("not a zip archive")
    (root / "empty").mkdir()
    (root / "results").mkdir()
    (root / "results" / "old.csv").write_text("a,b\n")
    bad_idx = write_idx_folder(root / "bad_idx")
    path = bad_idx / "train-images-idx3-ubyte.gz"
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + data[4:]))  # magic 2049: a label file's
    lambda_model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Lambda(lambda x: x * 2.0),
                                     keras.layers.Flatten(), keras.layers.Dense(10)])
    lambda_model.save(root / "lambda.keras")
    return root


def snapshot(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


CASES = {
    # train
    "train: zero learning rate": (["train", "--lr", "0"], "learning_rate must be a positive number"),
    "train: NaN learning rate": (["train", "--lr", "nan"], "learning_rate must be a positive number"),
    "train: zero width": (["train", "--width", "0"], "width must be a positive number"),
    "train: negative batch size": (["train", "--batch-size=-5"], "batch_size must be a positive number"),
    "train: zero epochs": (["train", "--epochs", "0"], "epochs must be a positive number"),
    "train: unknown activation": (["train", "--activation", "tanh"], "activation must be one of relu, sigmoid, leaky_relu"),
    "train: unknown dataset": (["train", "--dataset", "cifar10"], "dataset must be one of mnist, fashion_mnist, kmnist"),
    "train: malformed split": (["train", "--train-split", "train[:x]"], "train_split must be a tfds split string"),
    "train: unknown split name": (["train", "--val-split", "validation"], "names the split 'validation'"),
    "train: label smoothing of 1.5": (["train", "--label-smoothing", "1.5"], "label_smoothing must lie in [0, 1)"),
    "train: unknown preset": (["train", "--preset", "fastest"], "invalid choice: 'fastest'"),
    "train: missing data dir": (["train", "--data-dir", "nowhere"], "data dir nowhere does not exist"),
    "train: malformed IDX file": (["train", "--data-dir", "bad_idx", "--tfds-dir", "tfds", "--run-dir", "new_run"],
                                  "train-images-idx3-ubyte.gz has the magic number 2049"),
    "train: run dir that is a file": (["train", "--run-dir", "notes.txt"], "notes.txt is a file, not a folder"),
    "train: run dir that is not a run": (["train", "--run-dir", "results"], "not a relunet run"),
    "train: run dir of another configuration": (["train", "--run-dir", "run", "--width", "64"], "width: 256 -> 64"),
    "train: unknown strategy": (["train", "--strategy", "tpu"], "strategy must be one of default, mirrored, multiworker"),
    "train: cpu replicas without mirrored": (["train", "--cpu-replicas", "2"], "cpu_replicas needs strategy 'mirrored'"),
    "train: multiworker without a run dir": (["train", "--strategy", "multiworker"], "needs a run_dir that every worker names"),
    "train: multiworker without TF_CONFIG": (["train", "--strategy", "multiworker", "--run-dir", "new_run"], "needs the TF_CONFIG environment variable"),
    "train: TF_CONFIG that is not JSON": (["train", "--strategy", "multiworker", "--run-dir", "new_run"], "TF_CONFIG is not a cluster and task description",
                                          {"TF_CONFIG": "{cluster: 1"}),
    "train: TF_CONFIG task outside its cluster": (["train", "--strategy", "multiworker", "--run-dir", "new_run"], "task worker 2 is not in its cluster (2 worker)",
                                                  {"TF_CONFIG": '{"cluster": {"worker": ["localhost:1", "localhost:2"]}, "task": {"type": "worker", "index": 2}}'}),
    # tune
    "tune: lr range upside down": (["tune", "--lr-min", "0.1", "--lr-max", "0.01"], "lr_min must not exceed lr_max"),
    "tune: no trials": (["tune", "--max-trials", "0"], "max_trials must be a positive number"),
    "tune: unknown tuner": (["tune", "--tuner", "grid"], "tuner must be one of random, hyperband, bayesian"),
    "tune: directory that is a file": (["tune", "--directory", "notes.txt"], "tuning directory notes.txt is a file"),
    # compare
    "compare: depth that is not a number": (["compare", "--depths", "2,x"], "depths must be a comma-separated list of int"),
    "compare: unknown activation": (["compare", "--activations", "relu,tanh"], "activations must be one of"),
    "compare: output folder with files": (["compare", "--out", "results"], "results already holds something"),
    # export
    "export: missing model": (["export", "--model", "nope.keras"], "nope.keras does not exist"),
    "export: model that is not a model": (["export", "--model", "fake.keras", "--out", "exports"], "fake.keras cannot be loaded as a Keras model"),
    "export: target that is a file": (["export", "--model", "run", "--out", "notes.txt"], "export target notes.txt is a file"),
    "export: version that exists": (["export", "--model", "run", "--out", "saved", "--version", "1"], "saved/1 already exists; refusing to overwrite it"),
    # predict
    "predict: image that cannot be decoded": (["predict", "--model", "run", "broken.png"], "broken.png cannot be decoded as an image"),
    "predict: array of the wrong shape": (["predict", "--model", "run", "wrong_shape.npy"], "wrong_shape.npy has shape (3, 32, 32)"),
    "predict: folder without a model": (["predict", "--model", "empty", "digits.npy"], "empty is not a model"),
    "predict: Lambda layer under safe_mode": (["predict", "--model", "lambda.keras", "digits.npy"], "Lambda layer, Python code that Keras's safe_mode refuses"),
    "predict: missing input": (["predict", "--model", "run", "nothing.png"], "nothing.png does not exist"),
    # evaluate
    "evaluate: malformed split": (["evaluate", "--model", "run", "--split", "test["], "split must be a tfds split string"),
    "evaluate: zero batch size": (["evaluate", "--model", "run", "--batch-size", "0"], "batch_size must be a positive number"),
    "evaluate: missing model": (["evaluate", "--model", "gone"], "The model path gone does not exist"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_one_line_and_changes_nothing(workspace, case):
    args, message, *env = CASES[case]
    environ = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    before = snapshot(workspace)
    result = subprocess.run([sys.executable, "-m", "relunet.cli", *args], cwd=workspace,
                            env={**environ, **(env[0] if env else {})},
                            capture_output=True, text=True, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and message in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    after = snapshot(workspace)
    assert {path: after.get(path) for path in before} == before  # nothing changed or lost
    assert not list(workspace.glob("tfds/mnist_idx/*/*/dataset_info.json"))  # nothing half-prepared


def test_the_matrix_covers_every_command_with_at_least_25_cases():
    commands = {case[0][0] for case in CASES.values()}
    assert commands == {"train", "tune", "compare", "export", "predict", "evaluate"}
    assert len(CASES) >= 25
