"""Bad input, command by command: exit status 2, one line naming the problem, nothing
the user had is changed.

Each case runs the real `relunet` command line in a folder that holds files the user
cares about; the folder's content is compared before and after.
"""

import contextlib
import dataclasses
import gzip
import hashlib
import io
import json
import os
import shutil
import socket

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import run_cli_cases, write_idx_folder
from PIL import Image

from relunet import cli
from relunet.config import field_kinds, flags_of


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
    (root / "loop_a").symlink_to(root / "loop_b")
    (root / "loop_b").symlink_to(root / "loop_a")
    (root / "results").mkdir()
    (root / "results" / "old.csv").write_text("a,b\n")
    bad_idx = write_idx_folder(root / "bad_idx")
    path = bad_idx / "train-images-idx3-ubyte.gz"
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + data[4:]))  # magic 2049: a label file's
    lambda_model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Lambda(lambda x: x * 2.0),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    lambda_model.save(root / "lambda.keras")
    _add_odd_models(root)
    _add_odd_arrays(root)
    _add_odd_data(root)
    _add_broken_runs(root, trained_run)
    _add_broken_searches(root)
    _add_image_folders(root)
    _add_hostile_files(root)
    return root


def _add_hostile_files(root):
    """Files that lie about their size: an image header declaring 20000x20000 pixels, a
    PNG declaring 60 megapixels, a JPEG cut in half, an animated WebP (TensorFlow's
    decoder aborts the process on one), a .npy header declaring terabytes;
    a link to nothing in a folder of digits; and a port another process listens on (the
    workspace holds it open)."""
    png = tf.io.encode_png(np.zeros((10, 10, 1), np.uint8)).numpy()
    bomb = png[:16] + (20000).to_bytes(4, "big") * 2 + png[24:]
    (root / "bomb.png").write_bytes(bomb)
    sixty = png[:16] + (10000).to_bytes(4, "big") + (6000).to_bytes(4, "big") + png[24:]
    (root / "sixty.png").write_bytes(sixty)  # a PNG is decoded whole: over 50 megapixels
    noise = np.random.default_rng(0).integers(0, 256, (200, 200, 3), np.uint8)
    jpeg = tf.io.encode_jpeg(noise).numpy()
    (root / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    frames = [Image.fromarray(noise), Image.fromarray(noise[::-1])]
    frames[0].save(root / "moving.webp", save_all=True, append_images=frames[1:])
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 28, 28)}
    )
    (root / "huge.npy").write_bytes(header.getvalue() + bytes(16))
    (root / "images" / "dangling" / "5").mkdir(parents=True)
    (root / "images" / "dangling" / "5" / "gone.png").symlink_to(root / "nowhere.png")
    (root / "images" / "bomb" / "2").mkdir(parents=True)
    (root / "images" / "bomb" / "2" / "bomb.png").write_bytes(bomb)


def _add_odd_models(root):
    (root / "empty.keras").write_bytes(b"")
    colour = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    colour.save(root / "colour.keras")
    three = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    three.save(root / "three_classes.keras")
    from relunet.training.finder import Finder

    finder = Finder(channels=(4, 4, 4, 4))  # a run's finder.keras, given as the model
    finder(np.zeros((1, 28, 64), np.float32))
    finder.save(root / "finder.keras")

    class Flat(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 784], tf.float32, name="x")])
        def serve(self, x):
            return {"probabilities": tf.nn.softmax(x[:, :10])}

    flat = Flat()
    tf.saved_model.save(
        flat, str(root / "flat_model" / "1"), signatures={"serving_default": flat.serve}
    )
    (root / "model_export").symlink_to(root / "flat_model" / "1")  # model.export()'s folder


def _add_odd_arrays(root):
    (root / "empty.npy").write_bytes(b"")
    np.savez(root / "archive.npz", a=np.zeros((28, 28), np.uint8))
    (root / "archive.npz").rename(root / "archive.npy")
    np.save(root / "complex.npy", np.zeros((28, 28), np.complex64))
    np.save(root / "bools.npy", np.zeros((28, 28), bool))
    np.save(root / "strings.npy", np.array([["a"] * 28] * 28))
    over = np.zeros((2, 28, 28), np.float32)
    over[0, 0, 0] = 1.001  # one float past 1 once turned the whole file into 0..255
    np.save(root / "float_over_1.npy", over)
    (root / "png_named.npy").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))


def _add_odd_data(root):
    zero = write_idx_folder(root / "zero_idx", n_train=0)
    assert zero.is_dir()
    binary = write_idx_folder(root / "binary_sums")
    (binary / "SHA256SUMS").write_bytes(bytes(range(256)))


def _add_broken_runs(root, trained_run):
    config = json.loads((trained_run / "config.json").read_text())
    names = ("list_config", "bad_history", "records_not_dicts", "epoch_99", "step_million")
    for name in (*names, "format_1"):
        (root / name).mkdir()
        (root / name / "config.json").write_text(json.dumps(config))
    (root / "list_config" / "config.json").write_text("[]")
    (root / "bad_history" / "history.csv").write_text("\x00\x01 this is not,a history\n3,4\n")
    manifests = {
        "records_not_dicts": {"format": 2, "backups": [1, 2]},
        "format_1": {  # relunet 0.1's, which no user has: refused, not read
            "format": 1,
            "backups": [{"weights": "weights-1.weights.h5", "epoch": 0, "step": 3}],
        },
        "epoch_99": {
            "format": 2,
            "backups": [
                {
                    "weights": "weights-1.npz",
                    "epoch": 99,
                    "step": 0,
                    "sha256": "0" * 64,
                    "metrics": {},
                }
            ],
        },
        "step_million": {
            "format": 2,
            "backups": [
                {
                    "weights": "weights-1.npz",
                    "epoch": 0,
                    "step": 10**6,
                    "sha256": "0" * 64,
                    "metrics": {},
                }
            ],
        },
    }
    for name, manifest in manifests.items():
        (root / name / "backup").mkdir()
        (root / name / "backup" / "manifest.json").write_text(json.dumps(manifest))
        (root / name / "backup" / "weights-1.npz").write_bytes(b"stand-in")


def _add_image_folders(root):
    """Folders of labelled images, each wrong in one way."""
    png = tf.io.encode_png(np.full((28, 28, 1), 255, np.uint8)).numpy()
    for name in ("not_a_digit/3", "not_a_digit/cats", "unreadable/7", "empty_image/1", "loose"):
        (root / "images" / name).mkdir(parents=True)
    for name in ("times/4x2", "negative/4-1", "negative/2", "hollow/42", "hollow/7"):
        (root / "images" / name).mkdir(parents=True)
    for name in ("times/4x2", "negative/4-1", "negative/2", "hollow/42"):
        (root / "images" / name / "a.png").write_bytes(png)
    for name in ("hidden/.5", "numbers/42", "numbers/-5", "numbers/none"):
        (root / "images" / name).mkdir(parents=True)
        (root / "images" / name / "a.png").write_bytes(png)
    (root / "images" / "not_a_digit" / "3" / "a.png").write_bytes(png)
    (root / "images" / "unreadable" / "7" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    (root / "images" / "empty_image" / "1" / "a.png").write_bytes(b"")
    (root / "images" / "loose" / "a.png").write_bytes(png)
    (root / "images" / "none" / "4").mkdir(parents=True)
    (root / "images" / "none" / "4" / "notes.txt").write_text("no image here")


def _add_broken_searches(root):
    (root / "searches" / "listed").mkdir(parents=True)
    (root / "searches" / "listed" / "relunet_search.json").write_text("[]")
    (root / "searches" / "truncated" / "trial_0").mkdir(parents=True)
    (root / "searches" / "truncated" / "trial_0" / "trial.json").write_text(
        '{"trial_id": "0", "hyperpa'
    )


def snapshot(root):
    """Every file's content, but the run dirs' lock files (which name their last holder)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


# The trained run's flags, so that a broken copy of it is refused for its files alone.
TRAINED = (
    "--train-split",
    "train[:10000]",
    "--val-split",
    "train[50000:51000]",
    "--test-split",
    "test[:1000]",
    "--epochs",
    "1",
)

CASES = {
    # train
    "train: zero learning rate": (
        ["train", "--lr", "0"],
        "learning_rate must be a positive number",
    ),
    "train: NaN learning rate": (
        ["train", "--lr", "nan"],
        "learning_rate must be a positive number",
    ),
    "train: zero width": (["train", "--width", "0"], "width must be a positive number"),
    "train: negative batch size": (
        ["train", "--batch-size=-5"],
        "batch_size must be a positive number",
    ),
    "train: zero epochs": (["train", "--epochs", "0"], "epochs must be a positive number"),
    "train: unknown activation": (
        ["train", "--activation", "tanh"],
        "activation must be one of relu, sigmoid, leaky_relu",
    ),
    "train: unknown dataset": (
        ["train", "--dataset", "cifar10"],
        "dataset must be one of mnist, fashion_mnist, kmnist",
    ),
    "train: malformed split": (
        ["train", "--train-split", "train[:x]"],
        "train_split must be a tfds split string",
    ),
    "train: unknown split name": (
        ["train", "--val-split", "validation"],
        "names the split 'validation'",
    ),
    "train: label smoothing of 1.5": (
        ["train", "--label-smoothing", "1.5"],
        "label_smoothing must lie in [0, 1)",
    ),
    "train: unknown preset": (["train", "--preset", "fastest"], "invalid choice: 'fastest'"),
    "train: missing data dir": (
        ["train", "--data-dir", "nowhere"],
        "data dir nowhere does not exist",
    ),
    "train: malformed IDX file": (
        ["train", "--data-dir", "bad_idx", "--tfds-dir", "tfds", "--run-dir", "new_run"],
        "train-images-idx3-ubyte.gz has the magic number 2049",
    ),
    "train: run dir that is a file": (
        ["train", "--run-dir", "notes.txt"],
        "notes.txt is a file, not a folder",
    ),
    "train: run dir that is not a run": (["train", "--run-dir", "results"], "not a relunet run"),
    "train: run dir of another configuration": (
        ["train", "--run-dir", "run", "--width", "64"],
        "width: 256 -> 64",
    ),
    "train: seed above 2**32 - 1": (
        ["train", "--seed", "4294967296"],
        "seed must be an integer from 0 to 4294967295",
    ),
    "train: negative seed": (
        ["train", "--seed=-1"],
        "seed must be an integer from 0 to 4294967295",
    ),
    "train: width that cannot fit in memory": (["train", "--width", "10000000"], "need about"),
    "train: batch size that cannot fit in memory": (
        ["train", "--batch-size", "2000000000"],
        "need about",
    ),
    "train: batch size beyond what TensorFlow counts": (
        ["train", "--batch-size", "100000000000"],
        "batch_size must be at most 2147483647",
    ),
    "train: batch size written as a float": (
        ["train", "--batch-size", "1e20"],
        "invalid int value: '1e20'",
    ),
    "train: reversed percent slice": (
        ["train", "--train-split", "train[50%:10%]"],
        "selects no examples",
    ),
    "train: reversed slice": (["train", "--val-split", "train[500:100]"], "selects no examples"),
    "train: percent beyond 100": (
        ["train", "--train-split", "train[:150%]"],
        "percent bound outside",
    ),
    "train: run dir under a file": (
        ["train", "--run-dir", "notes.txt/run"],
        "cannot be created: notes.txt is a file",
    ),
    "train: run dir behind a symlink loop": (
        ["train", "--run-dir", "loop_a/run"],
        "Too many levels of symbolic links",
    ),
    "train: run dir whose config.json is a list": (
        ["train", "--run-dir", "list_config"],
        "holds a JSON list",
    ),
    "train: garbage history.csv": (
        ["train", "--run-dir", "bad_history", *list(TRAINED)],
        "is not a history relunet wrote",
    ),
    "train: backup records that are not records": (
        ["train", "--run-dir", "records_not_dicts", *list(TRAINED)],
        "it is not a backup record",
    ),
    "train: backup at epoch 99 of 1": (
        ["train", "--run-dir", "epoch_99", *list(TRAINED)],
        "its epoch 100 lies beyond the run's 1 epochs",
    ),
    "train: backup in a format relunet does not write": (
        ["train", "--run-dir", "format_1", *list(TRAINED)],
        "is not in the format this relunet writes (format 2; its manifest says 1); rerun "
        "with --restart",
    ),
    "train: backup at step 10**6": (
        ["train", "--run-dir", "step_million", *list(TRAINED)],
        "its step 1000000 lies outside an epoch of 79 steps",
    ),
    "train: unknown strategy": (
        ["train", "--strategy", "tpu"],
        "strategy must be one of default, mirrored, multiworker",
    ),
    "train: cpu replicas without mirrored": (
        ["train", "--cpu-replicas", "2"],
        "cpu_replicas needs strategy 'mirrored'",
    ),
    "train: multiworker without a run dir": (
        ["train", "--strategy", "multiworker"],
        "needs a run_dir that every worker names",
    ),
    "train: multiworker without TF_CONFIG": (
        ["train", "--strategy", "multiworker", "--run-dir", "new_run"],
        "needs the TF_CONFIG environment variable",
    ),
    "train: TF_CONFIG that is not JSON": (
        ["train", "--strategy", "multiworker", "--run-dir", "new_run"],
        "TF_CONFIG is not a cluster and task description",
        {"TF_CONFIG": "{cluster: 1"},
    ),
    "train: TF_CONFIG task outside its cluster": (
        ["train", "--strategy", "multiworker", "--run-dir", "new_run"],
        "task worker 2 is not in its cluster (2 worker)",
        {
            "TF_CONFIG": json.dumps(
                {
                    "cluster": {"worker": ["localhost:1", "localhost:2"]},
                    "task": {"type": "worker", "index": 2},
                }
            )
        },
    ),
    "train: TF_CONFIG port outside 1..65535": (
        ["train", "--strategy", "multiworker", "--run-dir", "new_run"],
        "a port from 1 to 65535. Received: 'localhost:99999'",
        {
            "TF_CONFIG": json.dumps(
                {
                    "cluster": {"worker": ["localhost:12345", "localhost:99999"]},
                    "task": {"type": "worker", "index": 0},
                }
            )
        },
    ),
    # tune
    "tune: an empty --directory": (["tune", "--directory", " "], "--directory is empty"),
    "tune: a fixed width while the width is searched": (
        ["tune", "--width", "512"],
        "width is searched, so a fixed width would be ignored",
    ),
    "tune: an epochs range while epochs are not searched": (
        ["tune", "--epochs-min", "3"],
        "epochs_min bounds the search of epochs, which search does not name",
    ),
    "tune: a training flag with --summary": (
        ["tune", "--summary", "--epochs", "3"],
        "only directory and project_name go with it. Received: epochs=3",
    ),
    "tune: no validation split": (
        ["tune", "--val-split", "none"],
        "val_split must name a split",
    ),
    "tune: lr range upside down": (
        ["tune", "--lr-min", "0.1", "--lr-max", "0.01"],
        "lr_min must not exceed lr_max",
    ),
    "tune: no trials": (["tune", "--max-trials", "0"], "max_trials must be a positive number"),
    "tune: a distortion's strength without --augment": (
        ["tune", "--rotation", "30"],
        "rotation shapes the distortions of --augment, which is 0",
    ),
    "tune: elastic distortion with no smoothness": (
        ["tune", "--augment", "0.5", "--elastic-sigma", "0"],
        "elastic_sigma must be above 0 while elastic_alpha is",
    ),
    "tune: non-digit shapes beyond one per digit": (
        ["tune", "--non-digits", "1.5"],
        "non_digits must",
    ),
    "tune: unknown tuner": (
        ["tune", "--tuner", "grid"],
        "tuner must be one of random, hyperband, bayesian",
    ),
    "tune: directory that is a file": (
        ["tune", "--directory", "notes.txt"],
        "tuning directory notes.txt is a file",
    ),
    "tune: seed above 2**32 - 1": (["tune", "--seed", "4294967296"], "seed must be an integer"),
    "tune: width range that cannot fit in memory": (
        ["tune", "--width-max", "10000000"],
        "need about",
    ),
    "tune: search config that is a list": (
        ["tune", "--directory", "searches", "--project-name", "listed"],
        "holds a JSON list",
    ),
    "tune: truncated trial.json": (
        ["tune", "--summary", "--directory", "searches", "--project-name", "truncated"],
        "trial.json cannot be read",
    ),
    # compare
    "compare: depth that is not a number": (
        ["compare", "--depths", "2,x"],
        "depths must be a comma-separated list of int",
    ),
    "compare: unknown activation": (
        ["compare", "--activations", "relu,tanh"],
        "activations must be one of",
    ),
    "compare: output folder with files": (
        ["compare", "--out", "results"],
        "results already holds something",
    ),
    "compare: output folder under a file": (
        ["compare", "--out", "notes.txt/cmp"],
        "cannot be created: notes.txt is a file",
    ),
    "compare: depths that cannot fit in memory": (
        ["compare", "--depths", "2,40000", "--width", "20000"],
        "need about",
    ),
    # export
    "export: missing model": (["export", "--model", "nope.keras"], "nope.keras does not exist"),
    "export: model that is not a model": (
        ["export", "--model", "fake.keras", "--out", "exports"],
        "fake.keras cannot be loaded as a Keras model",
    ),
    "export: an image as the model": (
        ["export", "--model", "bomb.png"],
        "bomb.png is not a .keras model file (or a run dir holding best.keras)",
    ),
    "export: target that is a file": (
        ["export", "--model", "run", "--out", "notes.txt"],
        "export target notes.txt is a file",
    ),
    "export: an empty --out": (["export", "--model", "run", "--out", ""], "--out is empty"),
    "export: version that exists": (
        ["export", "--model", "run", "--out", "saved", "--version", "1"],
        "saved/1 already exists; refusing to overwrite it",
    ),
    "export: target under a file": (
        ["export", "--model", "run", "--out", "notes.txt/models"],
        "cannot be created: notes.txt is a file",
    ),
    "export: empty .keras": (
        ["export", "--model", "empty.keras", "--out", "exports"],
        "empty.keras is empty",
    ),
    "export: model for colour 32x32 images": (
        ["export", "--model", "colour.keras", "--out", "exports"],
        "takes inputs of shape (32, 32, 3)",
    ),
    "export: model with 3 classes": (
        ["export", "--model", "three_classes.keras", "--out", "exports"],
        "returns outputs of shape (3,)",
    ),
    # predict
    "predict: a run's finder given as the model": (
        ["predict", "--model", "finder.keras", "digits.npy"],
        "finder.keras is a finder, which says where the digits of a row are",
    ),
    "predict: image that cannot be decoded": (
        ["predict", "--model", "run", "broken.png"],
        "broken.png cannot be decoded as an image",
    ),
    "predict: array of the wrong shape": (
        ["predict", "--model", "run", "wrong_shape.npy"],
        "wrong_shape.npy has shape (3, 32, 32)",
    ),
    "predict: folder without a model": (
        ["predict", "--model", "empty", "digits.npy"],
        "empty is not a model",
    ),
    "predict: Lambda layer under safe_mode": (
        ["predict", "--model", "lambda.keras", "digits.npy"],
        "Lambda layer, Python code that Keras's safe_mode refuses",
    ),
    "predict: missing input": (
        ["predict", "--model", "run", "nothing.png"],
        "nothing.png does not exist",
    ),
    "predict: empty .npy": (["predict", "--model", "run", "empty.npy"], "empty.npy is empty"),
    "predict: .npz renamed .npy": (
        ["predict", "--model", "run", "archive.npy"],
        "is an .npz archive, not a .npy array",
    ),
    "predict: complex array": (
        ["predict", "--model", "run", "complex.npy"],
        "holds complex numbers",
    ),
    "predict: boolean array": (["predict", "--model", "run", "bools.npy"], "holds booleans"),
    "predict: array of strings": (["predict", "--model", "run", "strings.npy"], "holds strings"),
    "predict: an empty input name": (
        ["predict", "--model", "run", " "],
        "An input is an empty name",
    ),
    "predict: floats past 1": (
        ["predict", "--model", "run", "float_over_1.npy"],
        "float_over_1.npy holds values outside 0..1 (floats)",
    ),
    "predict: a PNG named .npy": (
        ["predict", "--model", "run", "png_named.npy"],
        "png_named.npy is not a .npy file",
    ),
    "predict: empty .keras": (
        ["predict", "--model", "empty.keras", "digits.npy"],
        "empty.keras is empty",
    ),
    "predict: SavedModel with another signature": (
        ["predict", "--model", "flat_model", "digits.npy"],
        "has a serving_default signature taking (x: float32 (None, 784))",
    ),
    # evaluate
    "evaluate: an empty --report": (
        ["evaluate", "--model", "run", "--report", ""],
        "--report is empty",
    ),
    "evaluate: malformed split": (
        ["evaluate", "--model", "run", "--split", "test["],
        "split must be a tfds split string",
    ),
    "evaluate: a batch size it does not take": (
        ["evaluate", "--model", "run", "--batch-size", "1e20"],
        "unrecognized arguments: --batch-size 1e20",
    ),
    "evaluate: missing model": (
        ["evaluate", "--model", "gone"],
        "The model path gone does not exist",
    ),
    "evaluate: IDX folder with no images": (
        ["evaluate", "--model", "run", "--data-dir", "zero_idx", "--tfds-dir", "tfds"],
        "holds no images",
    ),
    "evaluate: SHA256SUMS that is not text": (
        ["evaluate", "--model", "run", "--data-dir", "binary_sums", "--tfds-dir", "tfds"],
        "is not a text list of sha256 sums",
    ),
    "evaluate: an image folder whose subfolder is not a digit": (
        ["evaluate", "--model", "run", "--images", "images/not_a_digit"],
        "has a subfolder 'cats'; a subfolder is named after what its images should read",
    ),
    "evaluate: an image folder whose subfolder is not a number": (
        ["evaluate", "--model", "run", "--images", "images/times"],
        "has a subfolder '4x2'; a subfolder is named after what its images should read",
    ),
    "evaluate: an image folder whose subfolder has a sign after a digit": (
        ["evaluate", "--model", "run", "--images", "images/negative"],
        "has a subfolder '4-1'; a subfolder is named after what its images should read",
    ),
    "evaluate: an image folder with an empty subfolder": (
        ["evaluate", "--model", "run", "--images", "images/hollow"],
        "hollow/7 holds no images",
    ),
    "evaluate: an image folder with no images": (
        ["evaluate", "--model", "run", "--images", "images/none"],
        "holds no images",
    ),
    "evaluate: an image folder whose only subfolder is hidden": (
        ["evaluate", "--model", "run", "--images", "images/hidden"],
        "holds no images (.png, .jpg, .jpeg, .gif, .bmp, .webp files in subfolders named after "
        "what they should read; .5 passed over, as hidden (a dot first))",
    ),
    "evaluate: a report on an image folder without one-digit images": (
        ["evaluate", "--model", "run", "--images", "images/numbers", "--report", "report"],
        "--report covers the one-digit images (subfolders 0 to 9); images/numbers has none "
        "(its subfolders: -5, 42, none)",
    ),
    "evaluate: an image folder with an empty file": (
        ["evaluate", "--model", "run", "--images", "images/empty_image"],
        "a.png is empty (0 bytes): not an image",
    ),
    "evaluate: an image outside the digit subfolders": (
        ["evaluate", "--model", "run", "--images", "images/loose"],
        "lies outside the subfolders",
    ),
    "evaluate: an image that cannot be decoded": (
        ["evaluate", "--model", "run", "--images", "images/unreadable"],
        "a.png cannot be decoded as an image",
    ),
    "evaluate: images and a split at once": (
        ["evaluate", "--model", "run", "--images", "images/none", "--split", "test[:10]"],
        "so split would be ignored",
    ),
    "evaluate: an image folder that does not exist": (
        ["evaluate", "--model", "run", "--images", "nowhere"],
        "The image folder nowhere does not exist",
    ),
    "predict: a PNG that declares 20000x20000 pixels": (
        ["predict", "--model", "run", "bomb.png"],
        "bomb.png declares 20000x20000 pixels, more than the 50,000,000 pixels relunet reads",
    ),
    "predict: a PNG that declares 60 megapixels": (
        ["predict", "--model", "run", "sixty.png"],
        "sixty.png declares 10000x6000 pixels, more than the 50,000,000 pixels relunet reads "
        "of a PNG, GIF, BMP or WebP",
    ),
    "predict: an animated WebP": (
        ["predict", "--model", "run", "moving.webp"],
        "moving.webp is an animated WebP, which relunet does not read",
    ),
    "predict: a JPEG cut short (libjpeg's own lines kept off stderr)": (
        ["predict", "--model", "run", "cut.jpg"],
        "cut.jpg cannot be decoded as an image",
    ),
    "predict: an .npy whose header declares 6 TB in a few bytes": (
        ["predict", "--model", "run", "huge.npy"],
        "declares an array of 6,272,000,000,000,000 bytes (1000000000000, 28, 28) but holds",
    ),
    "evaluate: an image folder holding a link to nothing": (
        ["evaluate", "--model", "run", "--images", "images/dangling"],
        "gone.png is a link to nothing",
    ),
    "evaluate: a decompression bomb in an image folder": (
        ["evaluate", "--model", "run", "--images", "images/bomb"],
        "bomb.png declares 20000x20000 pixels",
    ),
    # serve
    "serve: a port another process listens on": (
        ["serve", "flat_model", "--port", "HELD_PORT"],
        "cannot be listened on (Address already in use)",
    ),
    "serve: port outside 1..65535": (
        ["serve", "saved", "--port", "99999"],
        "port must be a port number from 1 to 65535. Received: 99999",
    ),
    "serve: one version instead of the folder of versions": (
        ["serve", "flat_model/1"],
        "is one SavedModel version; serve the folder of versions",
    ),
    "serve: one SavedModel that is not a numbered version": (
        ["serve", "model_export"],
        "model_export is one SavedModel, not a folder of numbered versions; relunet serves "
        "what `relunet export --model MODEL --out DIR` writes",
    ),
    "serve: folder without versions": (["serve", "empty"], "empty holds no SavedModel versions"),
    "serve: an empty MODEL_DIR": (["serve", ""], "MODEL_DIR is empty"),
    "serve: an empty --label": (["serve", "flat_model", "--label", ""], "--label is empty"),
    "serve: name that cannot be in a URL": (
        ["serve", "flat_model", "--name", "a/b"],
        "name must be letters, digits",
    ),
    "serve: label without a version": (
        ["serve", "flat_model", "--label", "stable"],
        "label must be LABEL=VERSION, a name of letters, digits, '-', '_' or '.' and a version "
        "number, as stable=1. Received: 'stable'.",
    ),
    "serve: one label for two versions": (
        ["serve", "flat_model", "--label", "stable=1", "--label", "stable=2"],
        "label 'stable' names two versions. Received: 'stable=2'.",
    ),
    "serve: label naming a version the folder does not hold": (
        ["serve", "flat_model", "--label", "stable=1", "--label", "canary=2"],
        "The label canary names version 2, which flat_model does not hold (it holds 1).",
    ),
    "serve: batching flags with batching off": (
        ["serve", "flat_model", "--enable-batching", "false", "--num-batch-threads", "4"],
        "num_batch_threads needs enable_batching true; batching is off. Received: "
        "num_batch_threads=4.",
    ),
    "serve: intra-op threads below zero": (
        ["serve", "flat_model", "--tensorflow-intra-op-parallelism", "-1"],
        "tensorflow_intra_op_parallelism must be a whole number from 0 (TensorFlow's choice) "
        "to 1024. Received: -1.",
    ),
    "serve: batch timeout below zero": (
        ["serve", "flat_model", "--batch-timeout-micros", "-1"],
        "batch_timeout_micros must be a whole number from 0 to 10000000. Received: -1.",
    ),
    "serve: a request head limit of 0 bytes": (
        ["serve", "flat_model", "--max-request-head-bytes", "0"],
        "max_request_head_bytes must be a positive number. Received: 0.",
    ),
    "serve: no batches of images": (
        ["serve", "flat_model", "--max-batch-size", "0"],
        "max_batch_size must be a positive number. Received: 0.",
    ),
}


# These load a model or a backup, so they pay for importing TensorFlow: the full suite's.
SLOW = {
    "export: model for colour 32x32 images",
    "export: model with 3 classes",
    "export: version that exists",
    "predict: Lambda layer under safe_mode",
    "predict: SavedModel with another signature",
    "predict: image that cannot be decoded",
    "evaluate: an image that cannot be decoded",
    "train: backup at epoch 99 of 1",
    "train: backup at step 10**6",
    "train: backup in a format relunet does not write",
    "train: backup records that are not records",
    "predict: a PNG that declares 20000x20000 pixels",
    "predict: a PNG that declares 60 megapixels",
    "predict: a JPEG cut short (libjpeg's own lines kept off stderr)",
    "evaluate: a decompression bomb in an image folder",
}


@pytest.fixture(scope="module")
def held_port():
    """A port another process (here, this one) listens on."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield str(held.getsockname()[1])


@pytest.fixture(scope="module")
def loading_cases(workspace):
    """What the cases that load a model or a backup did, each a command line of its own in
    one process that imports TensorFlow once for all of them (tests/cli_cases.py, which
    still gives each its own stderr, C libraries' lines included), and the workspace's
    files before they ran."""
    before = snapshot(workspace)
    names = [c for c in CASES if c in SLOW]
    ran = run_cli_cases([(CASES[name][0], workspace) for name in names])
    return before, dict(zip(names, ran, strict=True))


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c for c in CASES]
)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(workspace, case, request, held_port):
    """The cases answered before TensorFlow is imported run the command line in this
    process; those that load a model or a backup, in a process of their own making
    (`loading_cases`)."""
    args, message, *env = CASES[case]
    args = [held_port if arg == "HELD_PORT" else arg for arg in args]
    if case in SLOW:
        before, ran = request.getfixturevalue("loading_cases")
        code, stderr, after = ran[case].returncode, ran[case].stderr, ran[case].files
    else:
        before = snapshot(workspace)
        code, stderr = _in_this_process(workspace, args, env[0] if env else {})
        after = snapshot(workspace)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, stderr[-2000:]
    assert len(lines) == 1 and message in lines[0], stderr[-2000:]
    assert "Traceback" not in stderr
    assert {path: after.get(path) for path in before} == before  # nothing changed or lost
    assert not list(workspace.glob("tfds/mnist_idx/*/*/dataset_info.json"))  # nothing half-prepared
    assert not (workspace / "exports").exists()  # a refused export leaves no folder


def _float_flags() -> list[tuple[str, str, str]]:
    """(command, flag, field) for every float field of every command's config."""
    found = []
    for command, (config, _, _) in cli.COMMANDS.items():
        kinds = field_kinds(config)
        for field in dataclasses.fields(config):
            if kinds[field.name][0] is float:
                found.append((command, flags_of(field)[0], field.name))
    return found


@pytest.mark.parametrize("command, flag, name", _float_flags())
def test_every_float_flag_takes_only_a_finite_number_in_its_interval(command, flag, name, tmp_path):
    """One rule (relunet.base.values.check_in, walked over the fields by config.check_numbers):
    NaN, the infinities and 1e400 (an infinity once read) are refused for every float
    flag of every command, before anything is read or written."""
    required = {"serve": ["versions"]}.get(command, [])  # its positional argument
    for text in ("nan", "inf", "-inf", "1e400"):
        code, stderr = _in_this_process(tmp_path, [command, *required, f"{flag}={text}"], {})
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1, (text, stderr)
        assert f"error: {name} must" in lines[0] and "Received: " in lines[0], lines[0]
    assert not any(tmp_path.iterdir())


def _in_this_process(workspace, args, env) -> tuple[int, str]:
    saved = {k: os.environ.get(k) for k in ("TF_CONFIG", *env)}
    cwd, stdout, stderr = os.getcwd(), io.StringIO(), io.StringIO()
    try:
        os.environ.pop("TF_CONFIG", None)
        os.environ.update(env)
        os.chdir(workspace)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = cli.main(args)
            except SystemExit as exit:  # argparse's own way out
                code = exit.code
    finally:
        os.chdir(cwd)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return code, stderr.getvalue()
