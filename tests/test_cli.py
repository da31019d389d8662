"""The `relunet` command as users run it: real subprocesses, real files."""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from helpers import error_lines, run_cli, run_cli_cases
from PIL import Image

from relunet.data.idx import read_folder


def test_flag_errors_answer_before_importing_tensorflow():
    result = run_cli("train", "--lr", "0")
    assert result.returncode == 2 and error_lines(result) == [
        "relunet train: error: learning_rate must be a positive number. Received: 0.0."
    ]


def test_help_and_flag_errors_do_not_import_tensorflow():
    code = (
        "import sys, relunet.cli as c\n"
        "try:\n    c.main(['train', '--lr', '0'])\nexcept SystemExit:\n    pass\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["False", "False"]


def test_console_script_is_installed():
    relunet = shutil.which("relunet") or str(
        __import__("pathlib").Path(sys.executable).with_name("relunet")
    )
    result = subprocess.run([relunet, "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("train", "export", "predict", "evaluate"):
        assert command in result.stdout


def _one_error_line(result, message):
    assert result.returncode == 2, result.stderr[-2000:]
    lines = error_lines(result)
    assert len(lines) == 1 and message in lines[0], result.stderr[-2000:]


def _write_png(path, image):
    path.write_bytes(tf.io.encode_png(image).numpy())


@pytest.mark.slow
def test_export_then_predict_images_and_npy_then_evaluate(trained_run, mnist_dir, tmp_path):
    """The whole user path on one model: export, predict three input kinds, evaluate both
    forms; one command line after another, in one process (tests/cli_cases.py)."""
    out = tmp_path / "saved_models" / "relunet"
    test = read_folder(mnist_dir).splits["test"]
    digits, labels = test.images[:5], test.labels[:5]
    np.save(tmp_path / "digits.npy", digits[..., 0])
    _write_png(tmp_path / "mnist.png", digits[0])
    _write_png(tmp_path / "a,b.png", digits[0])
    # The same digit as a phone photo might have it: large, RGB, dark ink on white paper.
    photo = tf.image.resize(255 - digits[1], (140, 140)).numpy().clip(0, 255).astype(np.uint8)
    (tmp_path / "photo.jpg").write_bytes(tf.io.encode_jpeg(np.repeat(photo, 3, -1)).numpy())
    evaluate = ["evaluate", "--split", "test[:1000]", "--json", "--model"]
    exported, result, plain, *evaluated = run_cli_cases(
        [
            (["export", "--model", str(trained_run), "--out", str(out)], tmp_path),
            (
                [
                    *["predict", "--model", str(out), "digits.npy", "mnist.png", "photo.jpg"],
                    *["mnist.png", "a,b.png", "--json"],  # a file twice; a comma in a name
                ],
                tmp_path,
            ),
            (["predict", "--model", str(trained_run / "best.keras"), "mnist.png"], tmp_path),
            ([*evaluate, str(out)], tmp_path),
            ([*evaluate, str(trained_run)], tmp_path),
        ]
    )
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert (out / "1" / "saved_model.pb").is_file()
    assert result.returncode == 0, result.stderr[-2000:]
    inputs = [p["input"] for p in json.loads(result.stdout)]
    assert inputs == [f"digits.npy[{i}]" for i in range(5)] + [
        *["mnist.png", "photo.jpg", "mnist.png", "a,b.png"]
    ]
    predictions = {p["input"]: p for p in json.loads(result.stdout)}
    npy_classes = [predictions[f"digits.npy[{i}]"]["class"] for i in range(5)]
    assert npy_classes == labels.tolist()  # 7 2 1 0 4: easy digits for a 95% model
    assert predictions["mnist.png"]["class"] == labels[0]
    assert predictions["photo.jpg"]["class"] == labels[1]
    assert all(abs(sum(p["probabilities"]) - 1) < 1e-4 for p in predictions.values())
    assert plain.returncode == 0 and plain.stdout.split()[1] == str(labels[0])
    for each in evaluated:
        assert each.returncode == 0, each.stderr[-2000:]
    saved, keras_file = (json.loads(each.stdout) for each in evaluated)
    assert saved["examples"] == keras_file["examples"] == 1000
    assert saved["accuracy"] == pytest.approx(keras_file["accuracy"], abs=1e-6)
    assert saved["loss"] == pytest.approx(keras_file["loss"], rel=1e-4)
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert keras_file["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)


@pytest.mark.slow
def test_predict_takes_its_files_as_given_in_order_repeats_and_commas_kept():
    """Scripts pair predict's answers with its arguments by position: none is merged or
    split (until stop 46, a file named twice gave one answer, and `a,b.png` two files)."""
    from relunet import cli

    argv = ["predict", "--model", "m.keras", "7.png", "42.png", "7.png", "a,b.png"]
    args = cli.build_parser().parse_args(argv)
    assert cli.config_from_args(args.config, args).inputs == ("7.png", "42.png", "7.png", "a,b.png")


def test_diverging_training_stops_with_exit_1_and_one_line(tmp_path):
    result = run_cli(
        "train",
        "--lr",
        "1e9",
        "--train-split",
        "train[:3000]",
        "--val-split",
        "train[50000:50500]",
        "--epochs",
        "3",
        "--run-dir",
        str(tmp_path / "run"),
        "--verbose",
        "0",
    )
    assert result.returncode == 1
    lines = error_lines(result)
    assert len(lines) == 1 and "the loss became nan in epoch 1" in lines[0], result.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.slow  # two real trainings
def test_train_prints_nothing_on_stderr_even_from_a_warm_compilation_cache(tmp_path, source):
    """TensorFlow's start-up lines, and the lines XLA's persistent cache logs each time
    it loads an entry, stay off the terminal; the second run loads the first's entries."""
    args = ["--train-split", "train[:1000]", "--val-split", "train[55000:55500]"]
    args += ["--test-split", "test[:500]", "--epochs", "1", "--verbose", "0"]
    for name in ("cold", "warm"):
        result = run_cli("train", *args, "--run-dir", str(tmp_path / name))
        assert result.returncode == 0 and result.stderr == "", result.stderr[-3000:]
    python = "import sys; print('oops', file=sys.stderr)"  # anything else still passes
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from relunet.base.quiet import filtered_stderr\nwith filtered_stderr(): {python}",
        ],
        capture_output=True,
        text=True,
    )
    assert done.stderr == "oops\n"


def test_an_image_folder_names_numbers_as_the_reader_writes_them(tmp_path):
    """Subfolders `-5`, `3.14` and `-0.25` are numbers, as a signed or decimal number is
    read; a sign after a digit, two points, a point at the end or nine digits are not."""
    from relunet.base.errors import RelunetError
    from relunet.inference.image_folders import labelled_image_files

    good = ("7", "42", "-5", "3.14", "-0.25", "12345678", "none")
    for name in good:
        (tmp_path / "good" / name).mkdir(parents=True)
        (tmp_path / "good" / name / "a.png").write_bytes(b"\x89PNG")
    assert sorted(label for _, label in labelled_image_files(tmp_path / "good")) == sorted(good)
    for name in ("4-1", "1.2.3", "3.", "--5", "123456789", "-", "1e3"):
        (tmp_path / name / name).mkdir(parents=True)
        (tmp_path / name / name / "a.png").write_bytes(b"\x89PNG")
        with pytest.raises(RelunetError, match=f"has a subfolder '{re.escape(name)}'"):
            labelled_image_files(tmp_path / name)


def test_an_image_folder_is_read_through_links_and_without_hidden_entries(tmp_path):
    """Inside a label folder as beside them: a link to a folder is followed (a link back
    up is read once), and hidden entries (Jupyter's checkpoints, macOS's `._` files) are
    passed over, not scored as the label nor refused as undecodable. A link to a folder
    that is gone is refused, as a link to a missing image is."""
    from relunet.base.errors import RelunetError
    from relunet.inference.image_folders import labelled_image_files

    more, three = tmp_path / "more", tmp_path / "digits" / "3"
    for folder in (more, three / ".ipynb_checkpoints"):
        folder.mkdir(parents=True)
    for path in (three / "a.png", more / "b.png", more / "c.png"):
        path.write_bytes(b"\x89PNG")
    (three / ".ipynb_checkpoints" / "a-checkpoint.png").write_bytes(b"\x89PNG")
    (three / "._a.png").write_bytes(b"\x00\x05\x16\x07")  # AppleDouble, not a PNG
    (three / "more").symlink_to(more, target_is_directory=True)
    (more / "up").symlink_to(three, target_is_directory=True)  # a loop
    found = labelled_image_files(tmp_path / "digits")
    assert sorted(path.name for path, _ in found) == ["a.png", "b.png", "c.png"]
    assert {label for _, label in found} == {"3"}
    (three / "more-gone").symlink_to(tmp_path / "nowhere", target_is_directory=True)
    with pytest.raises(RelunetError, match="more-gone is a link to nothing"):
        labelled_image_files(tmp_path / "digits")


@pytest.mark.slow
def test_evaluate_images_reads_a_labelled_folder_as_predict_reads_each_file(
    trained_run, mnist_dir, tmp_path
):
    """`evaluate --images DIR`: subfolders 0 to 9 of image files (PNG and WebP), each made
    into a digit as predict makes it; its accuracy is predict's on the same files, and
    --report works. A folder of numbers alone has no loss to give: its keys say None."""
    test = read_folder(mnist_dir).splits["test"]
    folder, numbers = tmp_path / "digits", tmp_path / "numbers"
    files = []
    for i, (image, label) in enumerate(zip(test.images[:60], test.labels[:60], strict=True)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        path = folder / str(label) / f"{i}.{'webp' if i % 6 == 0 else 'png'}"
        Image.fromarray(255 - image[..., 0]).save(path, lossless=True)  # dark ink on paper
        files.append((path, int(label)))
    (numbers / "42").mkdir(parents=True)
    Image.fromarray(255 - np.hstack(test.images[:2, ..., 0])).save(numbers / "42" / "a.png")
    report = ["--json", "--report", str(tmp_path / "report")]
    evaluated, predicted, only_numbers = run_cli_cases(
        [
            (["evaluate", "--model", str(trained_run), "--images", str(folder), *report], tmp_path),
            (
                ["predict", "--model", str(trained_run), "--json", *(str(p) for p, _ in files)],
                tmp_path,
            ),
            (
                ["evaluate", "--model", str(trained_run), "--images", str(numbers), "--json"],
                tmp_path,
            ),
        ]
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    result = json.loads(evaluated.stdout)
    assert result["examples"] == 60 and result["images"] == str(folder)
    classes = {p["input"]: p["class"] for p in json.loads(predicted.stdout)}
    agree = np.mean([classes[str(path)] == label for path, label in files])
    assert result["accuracy"] == pytest.approx(agree, abs=1e-6) and agree > 0.8
    assert (tmp_path / "report" / "confusion_matrix.png").is_file()
    assert sum(s["support"] for s in result["per_class"]["classes"].values()) == 60
    assert only_numbers.returncode == 0, only_numbers.stderr[-2000:]
    scores = json.loads(only_numbers.stdout)
    assert scores["examples"] == 1 and scores["loss"] is scores["ece"] is None


@pytest.mark.slow
def test_predict_says_no_digit_found_for_a_blank_page(trained_run, tmp_path):
    """A blank 100x50 PNG was class 1 with p = 0.10; now it is no digit at all."""
    _write_png(tmp_path / "blank.png", np.full((50, 100, 1), 255, np.uint8))
    np.save(tmp_path / "zeros.npy", np.zeros((28, 28), np.uint8))
    plain, result = run_cli_cases(
        [
            (["predict", "--model", str(trained_run), "blank.png"], tmp_path),
            (
                ["predict", "--model", str(trained_run), "--json", "blank.png", "zeros.npy"],
                tmp_path,
            ),
        ]
    )
    assert plain.returncode == 0 and plain.stdout.split()[1:] == ["no", "digit", "found"]
    answers = json.loads(result.stdout)
    assert [(a["digit_found"], a["class"], a["probability"]) for a in answers] == [
        (False, None, None),
        (False, None, None),
    ]


@pytest.mark.slow
def test_output_into_a_closed_pipe_ends_quietly_as_sigpipe_would(tmp_path):
    """`relunet predict --json ... | head -1`: once the reader has gone, the command stops
    with 141 (a shell's status for SIGPIPE) and says nothing, not "error: Broken pipe"
    with the bad-input status 2."""
    from relunet.config import ModelConfig
    from relunet.training.model import build_model

    build_model(ModelConfig(width=8)).save(tmp_path / "model.keras")
    digit = np.zeros((28, 28, 1), np.uint8)
    digit[4:24, 13:16] = 255
    for i in range(64):  # answers far larger than a pipe's buffer
        np.save(tmp_path / f"d{i}.npy", digit[..., 0])
    process = subprocess.Popen(
        [sys.executable, "-m", "relunet.cli", "predict", "--model", "model.keras", "--json"]
        + [f"d{i}.npy" for i in range(64)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()  # the reader goes before a line is written
    err = process.stderr.read()
    assert process.wait(timeout=300) == 141, err
    assert "error" not in err and "Traceback" not in err, err
