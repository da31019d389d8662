"""A tfds builder that prepares MNIST-format datasets from a folder of IDX files.

It is the manual-download twin of tfds's own `mnist`, `fashion_mnist` and `kmnist`
builders: the same features and supervised keys, so everything downstream reads
the same `tfds` dataset whichever way the files arrived.
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from relunet.data import idx

_LABEL_NAMES = {
    "mnist": [str(digit) for digit in range(10)],
    "fashion_mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    # Romanised hiragana, in KMNIST's class order.
    "kmnist": ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
}


class MnistIdx(tfds.core.GeneratorBasedBuilder):
    """MNIST, Fashion-MNIST or KMNIST prepared from their four IDX files."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}  # noqa: RUF012  (tfds's declarative style)
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=name) for name in _LABEL_NAMES]  # noqa: RUF012
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Put the four IDX files of the dataset in one folder (each may be gzipped):
      train-images-idx3-ubyte  train-labels-idx1-ubyte
      t10k-images-idx3-ubyte   t10k-labels-idx1-ubyte
    and pass that folder with `relunet train --data-dir FOLDER` or the environment
    variable RELUNET_DATA_DIR. MNIST's files are listed on
    http://yann.lecun.com/exdb/mnist/.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(idx.IMAGE_SIZE, idx.IMAGE_SIZE, 1)),
                    "label": tfds.features.ClassLabel(names=_LABEL_NAMES[self.builder_config.name]),
                }
            ),
            supervised_keys=("image", "label"),
            # Filled in at preparation: which files this copy was made from.
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        folder = idx.read_folder(dl_manager.manual_dir)
        self.info.metadata["source_fingerprint"] = folder.fingerprint
        self.info.metadata["genuine_mnist"] = folder.is_genuine_mnist
        # MNIST provides train and test only; validation is a slice of train.
        return {name: self._generate_examples(split) for name, split in folder.splits.items()}

    def _generate_examples(self, split: idx.IdxSplit):
        # The files' order is fixed, so the index is a valid, stable key.
        for index, (image, label) in enumerate(zip(split.images, split.labels, strict=True)):
            yield index, {"image": idx.greyscale_png(image), "label": int(label)}
