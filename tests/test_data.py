"""Data: the tfds code path, the offline IDX path on the real files, the pipeline."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from helpers import write_idx_folder

from relunet import data
from relunet.base.errors import RelunetError
from relunet.data import PipelineConfig as P


def test_tfds_path_gives_supervised_uint8_images_and_labels():
    with tfds.testing.mock_data(num_examples=40):
        train, test = data.load_tfds(data.Source("mnist", "unused", "mock"), ["train", "test"])
        assert train.element_spec == (
            tf.TensorSpec((28, 28, 1), tf.uint8),
            tf.TensorSpec((), tf.int64),
        )
        assert int(train.cardinality()) == int(test.cardinality()) == 40
        labels = np.array([int(label) for _, label in train.take(16)])
        assert labels.min() >= 0 and labels.max() <= 9


def test_pipeline_normalises_one_hots_and_batches():
    with tfds.testing.mock_data(num_examples=40):
        (train,) = data.load_tfds(data.Source("mnist", "unused", "mock"), ["train"])
        arrays = data.load_arrays(train)
    assert arrays.images.dtype == tf.uint8 and arrays.images.shape == (40, 28, 28, 1)
    batches = data.training_pipeline(arrays, P(batch_size=16, seed=0))
    assert batches.element_spec == (
        tf.TensorSpec((None, 28, 28, 1), tf.float32),
        tf.TensorSpec((None, 10), tf.float32),
    )
    assert int(batches.cardinality()) == 3  # one pass is one epoch: ceil(40 / 16) batches
    sizes = [int(images.shape[0]) for images, _ in batches]
    assert sizes == [16, 16, 8]  # the last batch is short
    images, labels = next(iter(batches))
    assert float(tf.reduce_min(images)) >= 0.0 and float(tf.reduce_max(images)) <= 1.0
    np.testing.assert_array_equal(tf.reduce_sum(labels, axis=1), np.ones(16))


def test_each_epoch_sees_every_example_once_in_a_new_order():
    # Example i carries its number in its first pixel.
    images = tf.tensor_scatter_nd_update(
        tf.zeros((50, 28, 28, 1), tf.uint8),
        [[i, 0, 0, 0] for i in range(50)],
        tf.cast(tf.range(50), tf.uint8),
    )
    arrays = data.Arrays(images, tf.range(50) % 10)
    batches = data.training_pipeline(arrays, P(batch_size=8, seed=3))
    first, second = _numbers(batches), _numbers(batches)  # each pass is the next epoch
    assert sorted(first) == sorted(second) == list(range(50))
    assert not np.array_equal(first, second)


def _numbered(n):
    """n examples, example i carrying i in its first pixel (n <= 256)."""
    images = tf.tensor_scatter_nd_update(
        tf.zeros((n, 28, 28, 1), tf.uint8),
        [[i, 0, 0, 0] for i in range(n)],
        tf.cast(tf.range(n), tf.uint8),
    )
    return data.Arrays(images, tf.range(n) % 10)


def _numbers(batches):
    return np.concatenate([np.rint(b[0][:, 0, 0, 0].numpy() * 255).astype(int) for b in batches])


def test_starting_at_a_later_epoch_gives_that_epoch_s_order():
    arrays = _numbered(30)
    straight = data.training_pipeline(arrays, P(batch_size=7, seed=5))
    epochs = [_numbers(straight) for _ in range(3)]
    np.testing.assert_array_equal(
        _numbers(
            data.training_pipeline(arrays, P(batch_size=7, seed=5), counter=data.EpochCounter(2))
        ),
        epochs[2],
    )


def test_the_rest_of_an_epoch_is_that_epoch_after_its_first_batches():
    arrays = _numbered(30)
    whole = _numbers(
        data.training_pipeline(arrays, P(batch_size=7, seed=5), counter=data.EpochCounter(4))
    )
    rest = data.rest_of_epoch(arrays, P(batch_size=7, seed=5), epoch=4, skip=2)
    assert int(rest.cardinality()) == 3  # ceil(30 / 7) = 5 batches, 2 of them done
    np.testing.assert_array_equal(_numbers(rest), whole[14:])


def test_the_pipeline_must_be_built_outside_a_strategy_scope():
    arrays = _numbered(8)
    with (
        tf.distribute.MirroredStrategy(["/cpu:0"]).scope(),
        pytest.raises(RelunetError, match=r"outside strategy\.scope"),
    ):
        data.training_pipeline(arrays, P(batch_size=4, seed=0))


def test_label_smoothing_applies_to_training_batches_only():
    arrays = data.Arrays(tf.zeros((4, 28, 28, 1), tf.uint8), tf.constant([0, 1, 2, 3]))
    _, smoothed = next(
        iter(data.training_pipeline(arrays, P(batch_size=4, seed=0, label_smoothing=0.1)))
    )
    _, plain = next(iter(data.evaluation_pipeline(arrays, batch_size=4)))
    assert sorted(np.unique(smoothed.numpy().round(4))) == [0.01, 0.91]
    np.testing.assert_array_equal(plain.numpy().argmax(-1), [0, 1, 2, 3])
    assert sorted(np.unique(plain.numpy())) == [0.0, 1.0]


def test_real_idx_files_become_the_default_splits(source):
    assert source.name == "mnist_idx/mnist"
    assert "genuine MNIST" in source.description
    train, val, test = data.load_tfds(source, ["train[:90%]", "train[90%:]", "test"])
    assert [int(d.cardinality()) for d in (train, val, test)] == [54000, 6000, 10000]
    image, label = next(iter(test))
    assert image.dtype == tf.uint8 and image.shape == (28, 28, 1) and 0 <= int(label) <= 9


def test_the_prepared_copy_holds_the_idx_files_pixels_and_labels_exactly(source, mnist_dir):
    from relunet.data import idx

    test = idx.read_folder(str(mnist_dir)).splits["test"]
    (prepared,) = data.load_tfds(source, ["test"])
    batches = list(prepared.batch(2000).as_numpy_iterator())
    images, labels = (np.concatenate([batch[i] for batch in batches]) for i in (0, 1))
    # tfds stores the examples in an order of its own: compare them as sorted rows.
    stored = np.concatenate([images.reshape(len(images), -1), labels.reshape(-1, 1)], 1)
    read = np.concatenate([test.images.reshape(len(test.images), -1), test.labels[:, None]], 1)
    np.testing.assert_array_equal(np.unique(stored, axis=0), np.unique(read, axis=0))


def test_prepared_copy_is_reused_and_said_so(source, mnist_dir, capsys):
    again = data.find_source("mnist", str(mnist_dir), source.tfds_dir)
    out = capsys.readouterr().out
    assert (again.name, again.tfds_dir) == (source.name, source.tfds_dir)
    assert "genuine MNIST" in again.description
    assert "preparing" not in out and "prepared as tfds 'mnist_idx/mnist'" in out


def test_other_idx_files_replace_a_stale_prepared_copy(tmp_path):
    tfds_dir = str(tmp_path / "tfds")
    first = data.find_source(
        "fashion_mnist", str(write_idx_folder(tmp_path / "a", seed=1)), tfds_dir
    )
    second = data.find_source(
        "fashion_mnist", str(write_idx_folder(tmp_path / "b", n_train=20, seed=2)), tfds_dir
    )
    assert first.name == second.name == "mnist_idx/fashion_mnist"
    (train,) = data.load_tfds(second, ["train"])
    assert int(train.cardinality()) == 20


PREPARE = (
    "import sys; from relunet import data; "
    "print(data.find_source('kmnist', sys.argv[1], sys.argv[2], verbose=False).name)"
)


@pytest.mark.slow
def test_processes_that_prepare_the_same_tfds_dir_at_once_all_succeed(tmp_path):
    # The workers of a multi-worker job on one host start together on a fresh tfds dir.
    folder, tfds_dir = write_idx_folder(tmp_path / "idx", n_train=200), tmp_path / "tfds"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", PREPARE, str(folder), str(tfds_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], [err[-1500:] for _, err in results]
    assert [out.strip().splitlines()[-1] for out, _ in results] == ["mnist_idx/kmnist"] * 3
    (train,) = data.load_tfds(data.find_source("kmnist", str(folder), str(tfds_dir)), ["train"])
    assert int(train.cardinality()) == 200


def test_malformed_idx_folder_leaves_nothing_prepared(tmp_path):
    folder = write_idx_folder(tmp_path / "bad")
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b broken")
    tfds_dir = tmp_path / "tfds"
    with pytest.raises(RelunetError, match=r"train-images-idx3-ubyte\.gz is not a readable gzip"):
        data.find_source("kmnist", str(folder), str(tfds_dir))
    assert not list(tfds_dir.glob("mnist_idx/kmnist/*/dataset_info.json"))
    assert not list(tfds_dir.glob("mnist_idx/kmnist/incomplete*"))


@pytest.mark.parametrize(
    "split, says",
    [
        ("train[:x]", r"must be a tfds split string such as 'train'.*Received: 'train\[:x\]'"),
        ("train[", r"must be a tfds split string .*Received: 'train\['"),
        ("", r"must be a tfds split string .*Received: ''"),
        ("validation", r"names the split 'validation', but the datasets have only train and test"),
        ("train[:10]+valid", r"names the split 'valid', but the datasets have only train and test"),
    ],
)
def test_malformed_split_strings_are_refused_before_loading(source, split, says):
    with pytest.raises(RelunetError, match=says):
        data.load_tfds(source, [split])


def test_empty_slice_is_refused(source):
    with pytest.raises(RelunetError, match="selects no examples"):  # empty at any size
        data.load_tfds(source, ["train[100:100]"])
    with pytest.raises(RelunetError, match="incompatible with 10000 examples"):  # past the end
        data.load_tfds(source, ["test[20000:]"])


def test_shuffle_order_is_a_function_of_the_seed(source):
    (train,) = data.load_tfds(source, ["train[:1000]"])
    arrays = data.load_arrays(train)

    def first_labels(seed):
        _, labels = next(iter(data.training_pipeline(arrays, P(batch_size=64, seed=seed))))
        return labels.numpy().argmax(-1)

    np.testing.assert_array_equal(first_labels(7), first_labels(7))
    assert not np.array_equal(first_labels(7), first_labels(8))


def test_unknown_dataset_is_refused():
    with pytest.raises(RelunetError, match="dataset must be one of mnist, fashion_mnist, kmnist"):
        data.find_source("cifar10")
