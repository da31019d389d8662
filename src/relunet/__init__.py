"""relunet: the ReLU-vs-Sigmoid MNIST lab as a resumable, exportable Keras trainer.

The public names below load on first use, so `import relunet` (and the `relunet`
command's start-up) does not pay for importing TensorFlow until it is needed. Training
itself is `from relunet.training.train import train` (the module shares its name).

Importing relunet only defines names: it changes nothing in how Python imports other
libraries, and leaves TensorFlow's logging and stderr alone (the `relunet` command
quiets TensorFlow's start-up lines in its own process). Load a saved model with
`relunet.load_model(path)`; `ReluNet` registers itself with Keras where it is defined,
so `keras.models.load_model` finds it too once `relunet.training.model` has been imported.
"""

import importlib

__version__ = "0.2.0"

_PUBLIC = {
    "ModelConfig": "relunet.config",
    "OptimConfig": "relunet.config",
    "TrainConfig": "relunet.config",
    "TuneConfig": "relunet.config",
    "CompareConfig": "relunet.config",
    "RelunetError": "relunet.base.errors",
    "ReluNet": "relunet.training.model",
    "build_model": "relunet.training.model",
    "load_model": "relunet.training.model",
    "loss_fn": "relunet.training.model",
    "accuracy_fn": "relunet.training.model",
    "grad": "relunet.training.model",
    "find_source": "relunet.data",
    "load_tfds": "relunet.data",
    "training_pipeline": "relunet.data",
    "EpochCounter": "relunet.data",
    "evaluation_pipeline": "relunet.data",
    "make_callbacks": "relunet.training.callbacks",
    "export_saved_model": "relunet.inference.export",
    "load_classifier": "relunet.inference.classifier",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'relunet' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_PUBLIC])
