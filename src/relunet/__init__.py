"""relunet: the ReLU-vs-Sigmoid MNIST lab as a resumable, exportable Keras trainer.

The public names below load on first use, so `import relunet` (and the `relunet`
command's start-up) does not pay for importing TensorFlow until it is needed.
Training itself is `from relunet.train import train` (the module shares its name).

After `import relunet`, TensorFlow's first import is quiet (its C++ start-up lines are
filtered, see relunet.quiet), and `keras.models.load_model` finds `ReluNet`: the class
registers itself with Keras as soon as Keras is imported.
"""

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.2.0"

_PUBLIC = {
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


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: lets the normal finders find `tensorflow` and `keras`, and
    wraps their first execution: TensorFlow's runs quietly, and once Keras has run,
    relunet.model is imported, which registers ReluNet with it."""

    def find_spec(self, name, path=None, target=None):
        if name not in _PENDING:
            return None
        _PENDING.remove(name)
        if not _PENDING:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader.exec_module = _WRAPPERS[name](spec.loader.exec_module)
        return spec


def _quietly(exec_module):
    def run(module):
        from relunet import quiet

        with quiet.quietly():
            exec_module(module)
        quiet.after_import(module)

    return run


def _then_register(exec_module):
    def run(module):
        exec_module(module)
        importlib.import_module("relunet.model")

    return run


_WRAPPERS = {"tensorflow": _quietly, "keras": _then_register}
_PENDING = [name for name in _WRAPPERS if name not in sys.modules]
if "keras" in sys.modules:
    importlib.import_module("relunet.model")
if _PENDING:
    sys.meta_path.insert(0, _AfterImport())
