"""Named series of networks: a lab's sequence of notebooks as data.

Each network's layers, the test accuracy its notebook printed, and the lessons (one
change from one network to the next). `relunet compare --series lab10` trains them side
by side (relunet.experiments.compare) and reads its cells over their seeds
(relunet.experiments.seeds). No TensorFlow: the config checks a series' name here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

INIT_NAMES = {
    "random_normal": "RandomNormal(0.05)",
    "glorot_uniform": "Xavier (Glorot uniform)",
    "he_normal": "He normal",
}


@dataclass(frozen=True)
class Network:
    """One notebook's network: its layers and the accuracy it printed."""

    lab: str  # the notebook's number, e.g. "10-1-2"
    topic: str  # the end of its file name: lab-<lab>-mnist_nn_<topic>.ipynb
    activation: str
    depth: int
    width: int
    init: str
    dropout: float = 0.0
    batch_norm: bool = False
    printed: float | None = None  # test accuracy the notebook printed after its last step

    @property
    def notebook(self) -> str:
        return f"lab-{self.lab}-mnist_nn_{self.topic}.ipynb"

    def layers(self) -> dict[str, Any]:
        """The network as ModelConfig fields."""
        return {
            "activation": self.activation,
            "depth": self.depth,
            "width": self.width,
            "init": self.init,
            "dropout": self.dropout,
            "batch_norm": self.batch_norm,
        }

    def describe(self) -> str:
        """'relu, 4x512, Xavier (Glorot uniform), dropout 0.5'."""
        parts = [self.activation, f"{self.depth}x{self.width}", INIT_NAMES[self.init]]
        if self.dropout:
            parts.append(f"dropout {self.dropout:g}")
        if self.batch_norm:
            parts.append("batch norm")
        return ", ".join(parts)


@dataclass(frozen=True)
class Lesson:
    """One change from one network of a series to the next."""

    before: str  # a Network's lab
    after: str
    change: str  # what `after` does differently, as a phrase


@dataclass(frozen=True)
class Series:
    name: str
    source: str  # where the printed figures come from
    networks: tuple[Network, ...]
    lessons: tuple[Lesson, ...]
    # The settings the series trains with where the command line gives none.
    training: dict[str, Any] = field(default_factory=dict)

    def network(self, lab: str) -> Network:
        return next(n for n in self.networks if n.lab == lab)


# Deep Learning Zero To All, season 2, tf_2.x: six notebooks, each a copy of the one
# before with one change, all trained one epoch (468 steps of 128 images with
# drop_remainder, of all 60,000) with Adam 1e-3, printing the test accuracy after
# every step; `printed` is the last of those lines. (Their closing headings give other
# figures for five of them: 96.22, 96.55, 96.88, 95.91 and 97.51%, from other runs.)
LAB10 = Series(
    name="lab10",
    source="Deep Learning Zero To All, season 2, lab-10-*_mnist_*.ipynb (tf_2.x)",
    networks=(
        Network("10-1-1", "softmax", "sigmoid", 2, 256, "random_normal", printed=0.9241),
        Network("10-1-2", "relu", "relu", 2, 256, "random_normal", printed=0.9558),
        Network("10-2-1", "xavier", "relu", 2, 256, "glorot_uniform", printed=0.9607),
        Network("10-2-2", "deep", "relu", 4, 512, "glorot_uniform", printed=0.9684),
        Network("10-3", "dropout", "relu", 4, 512, "glorot_uniform", dropout=0.5, printed=0.9562),
        Network(
            "10-4", "batchnorm", "relu", 4, 512, "glorot_uniform", batch_norm=True, printed=0.9685
        ),
    ),
    lessons=(
        Lesson("10-1-1", "10-1-2", "ReLU instead of sigmoid"),
        Lesson("10-1-2", "10-2-1", "Xavier (Glorot uniform) init instead of RandomNormal(0.05)"),
        Lesson("10-2-1", "10-2-2", "4 layers of 512 instead of 2 of 256"),
        Lesson("10-2-2", "10-3", "dropout 0.5 after each hidden layer"),
        Lesson("10-2-2", "10-4", "batch normalization before each ReLU"),
    ),
    # All 60,000 training images, scored on the test split, one epoch: the notebooks'
    # own protocol. One epoch picks no best epoch, so no validation split is held out.
    training={"train_split": "train", "val_split": "none", "epochs": 1},
)
SERIES = {LAB10.name: LAB10}
