"""relunet: the ReLU-vs-Sigmoid MNIST lab as a resumable, exportable Keras trainer.

The public names below load on first use, so `import relunet` (and the `relunet`
command's start-up) does not pay for importing TensorFlow until it is needed.
Training itself is `from relunet.train import train` (the module shares its name).

After `import relunet`, TensorFlow's first import is quiet (its C++ start-up lines are
filtered, see relunet.quiet), and `keras.models.load_model` finds `ReluNet`: the class
registers itself with Keras as soon as Keras is imported (`relunet._compat` says how).
"""

import importlib

from relunet import _compat

__version__ = "0.2.0"

_PUBLIC = {
    "ModelConfig": "relunet.config",
    "OptimConfig": "relunet.config",
    "TrainConfig": "relunet.config",
    "TuneConfig": "relunet.config",
    "CompareConfig": "relunet.config",
    "RelunetError": "relunet.errors",
    "ReluNet": "relunet.model",
    "build_model": "relunet.model",
    "load_model": "relunet.model",
    "loss_fn": "relunet.model",
    "accuracy_fn": "relunet.model",
    "grad": "relunet.model",
    "find_source": "relunet.data",
    "load_tfds": "relunet.data",
    "training_pipeline": "relunet.data",
    "EpochCounter": "relunet.data",
    "evaluation_pipeline": "relunet.data",
    "make_callbacks": "relunet.train",
    "export_saved_model": "relunet.export",
    "load_classifier": "relunet.inference",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'relunet' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_PUBLIC])


_compat.quiet_tensorflow_and_register_relunet()
