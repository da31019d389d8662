"""The lab-10 series: its networks as the notebooks have them, the seeds' spread and the
sentence each lesson gets, and `relunet compare --series lab10` run on a real slice."""

import json

import pytest
import tensorflow as tf
from helpers import run_cli

from relunet.base.errors import RelunetError
from relunet.cli import build_parser, config_from_args
from relunet.config import CompareConfig, series
from relunet.experiments import seeds


def cell(lab, *accuracies):
    """A cell as compare summarizes one: the test accuracy's mean and spread, its seeds."""
    return {
        "network": lab,
        "seeds": list(range(len(accuracies))),
        **seeds.spread("test_accuracy", list(accuracies)),
    }


def test_lab10_is_the_six_notebooks_with_the_figures_they_printed():
    lab10 = series.SERIES["lab10"]
    assert [(n.lab, n.printed) for n in lab10.networks] == [
        ("10-1-1", 0.9241),
        ("10-1-2", 0.9558),
        ("10-2-1", 0.9607),
        ("10-2-2", 0.9684),
        ("10-3", 0.9562),
        ("10-4", 0.9685),
    ]
    assert lab10.network("10-1-1").describe() == "sigmoid, 2x256, RandomNormal(0.05)"
    assert lab10.network("10-4").layers() == {
        "activation": "relu",
        "depth": 4,
        "width": 512,
        "init": "glorot_uniform",
        "dropout": 0.0,
        "batch_norm": True,
    }
    assert lab10.network("10-3").notebook == "lab-10-3-mnist_nn_dropout.ipynb"
    # Each lesson changes one thing (ReLU to Xavier to deep: the notebooks' own steps).
    for lesson in lab10.lessons:
        before, after = lab10.network(lesson.before).layers(), lab10.network(lesson.after).layers()
        changed = {k for k in before if before[k] != after[k]}
        assert changed in (
            {"activation"},
            {"init"},
            {"depth", "width"},
            {"dropout"},
            {"batch_norm"},
        )


def test_a_series_takes_its_own_data_and_epochs_unless_told_and_a_grid_keeps_compares():
    grid = CompareConfig()
    assert (grid.train_split, grid.val_split, grid.epochs) == ("train[:90%]", "train[90%:]", 5)
    lab10 = CompareConfig(series="lab10")
    assert (lab10.train_split, lab10.val_split, lab10.epochs) == ("train", "none", 1)
    assert CompareConfig(series="lab10", epochs=3, train_split="train[:50%]").validate().epochs == 3
    with pytest.raises(RelunetError, match=r"dropouts must lie in \[0, 1\). Received: .0.5.\."):
        CompareConfig(dropouts=("0.5",)).validate()


def test_list_flags_are_read_as_their_field_s_type_and_each_value_counts_once():
    args = build_parser().parse_args(["compare", "--dropouts", "0.5,.5,0", "--depths", "2,02"])
    config = config_from_args(args.config, args)
    assert config.dropouts == (0.5, 0.0) and config.depths == (2,)


def test_a_lesson_says_whether_its_difference_is_larger_than_the_spread():
    lab10 = series.SERIES["lab10"]
    relu, xavier = lab10.lessons[0], lab10.lessons[1]
    sigmoid_cell = cell("10-1-1", 0.923, 0.925, 0.924)
    relu_cell = cell("10-1-2", 0.955, 0.958, 0.953)
    xavier_cell = cell("10-2-1", 0.957, 0.961, 0.954)

    said = seeds.lesson_sentence(lab10, relu, sigmoid_cell, relu_cell)
    assert said.startswith("10-1-2 vs 10-1-1, ReLU instead of sigmoid: +3.13 points")
    assert "(the notebooks: +3.17)" in said
    assert "larger than the spread over 3 seeds" in said and "92.30-92.50%" in said
    assert seeds.larger_than_spread(sigmoid_cell, relu_cell) is True

    said = seeds.lesson_sentence(lab10, xavier, relu_cell, xavier_cell)
    assert "not larger than the spread over 3 seeds" in said and "cannot tell them apart" in said
    assert seeds.larger_than_spread(relu_cell, xavier_cell) is False

    one = seeds.lesson_sentence(lab10, relu, cell("10-1-1", 0.92), cell("10-1-2", 0.95))
    assert "one seed has no spread" in one


def test_above_five_seeds_the_spread_is_the_standard_deviation():
    # One low outlier: the range ends at 0.95, below the other cell; mean ± sd reaches it.
    wide = cell("10-1-2", 0.90, 0.95, 0.95, 0.95, 0.95, 0.95)
    close = cell("10-2-1", 0.955, 0.956, 0.955, 0.956, 0.955, 0.956)
    assert seeds.spread_header(6) == "sd" and seeds.spread_text(wide).startswith("±")
    assert seeds.interval(wide)[1] == pytest.approx(
        wide["test_accuracy"] + wide["test_accuracy_sd"]
    )
    assert seeds.larger_than_spread(wide, close) is False
    five = cell("10-1-2", 0.90, 0.95, 0.95, 0.95, 0.95), cell("10-2-1", *[0.955] * 5)
    assert seeds.spread_header(5) == "min-max" and seeds.larger_than_spread(*five) is True


@pytest.mark.slow
def test_compare_series_lab10_on_a_slice_prints_the_table_the_lessons_and_the_source(
    tmp_path, source
):
    out = tmp_path / "lab10"
    result = run_cli(
        "compare",
        "--series",
        "lab10",
        "--seeds",
        "2",
        "--train-split",
        "train[:1000]",
        "--test-split",
        "test[:500]",
        "--out",
        str(out),
        "--verbose",
        "0",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("lab "))
    assert lines[header].split()[:5] == ["lab", "network", "test_acc", "min-max", "notebook"]
    rows = lines[header + 1 : header + 7]
    assert [row.split()[0] for row in rows] == [
        "10-1-1",
        "10-1-2",
        "10-2-1",
        "10-2-2",
        "10-3",
        "10-4",
    ]
    assert "0.9241" in rows[0] and "0.9685" in rows[5]  # the notebooks' figures beside ours
    lessons = [line for line in lines if " vs 10-" in line]
    assert len(lessons) == 5 and all("spread over 2 seeds" in line for line in lessons)
    assert "Deep Learning Zero To All, season 2, lab-10-*_mnist_*.ipynb (tf_2.x)" in result.stdout

    summary = json.loads((out / "summary.json").read_text())
    cells = {c["network"]: c for c in summary["cells"]}
    for c in cells.values():
        assert c["seeds"] == [777, 778] and c["val_accuracy"] is None and c["epochs"] == 1
        assert c["test_accuracy_min"] <= c["test_accuracy"] <= c["test_accuracy_max"]
    runs = json.loads((out / "results.json").read_text())
    assert len(runs) == 12 and {r["seed"] for r in runs} == {777, 778}
    # The first step's staircase: sigmoid shrinks the gradient toward the input more than
    # ReLU, and the init and batch norm change it too.
    ratio = {
        lab: c["grad_norms_at_init"][0] / c["grad_norms_at_init"][-1] for lab, c in cells.items()
    }
    assert ratio["10-1-1"] < ratio["10-1-2"] / 5
    assert cells["10-2-1"]["grad_norms_at_init"] != cells["10-1-2"]["grad_norms_at_init"]
    # Batch norm rescales each layer's pre-activations to unit variance, and the gradient
    # coming back through it with them: the first layer's is several times larger.
    assert cells["10-4"]["grad_norms_at_init"][0] > 3 * cells["10-2-2"]["grad_norms_at_init"][0]
    assert len(cells["10-4"]["grad_norms_at_init"]) == 5  # four hidden layers and the logits
    for name in ("first_step_grad_norms.png", "test_accuracy.png"):
        png = (out / name).read_bytes()
        assert tf.io.decode_png(png).shape[0] > 300  # a real picture, not a stub
    assert not (out / "val_accuracy.png").exists()  # a series validates on nothing
