"""relunet: the ReLU-vs-Sigmoid MNIST lab as a resumable, exportable Keras trainer.

The names below are what notebooks, the docs and users import, from `relunet` itself
(and the data from the documented subpackage `relunet.data`), so moving a module inside
its room changes nothing for them. They load on first use, so `import relunet` (and
the `relunet` command's start-up) does not pay for importing TensorFlow until it is
needed. Each command's library function (`relunet.train(TrainConfig(...))`, `tune`,
`compare`, `predict`, `evaluate`) runs the command's checks, then its work.

Importing relunet only defines names: it changes nothing in how Python imports other
libraries, and leaves TensorFlow's logging and stderr alone (the `relunet` command
quiets TensorFlow's start-up lines in its own process; a notebook calls
`relunet.import_tensorflow_quietly()` for the same). Load a saved model with
`relunet.load_model(path)`; `ReluNet` registers itself with Keras where it is defined,
so `keras.models.load_model` finds it too once `relunet.ReluNet` has been loaded.
"""

from relunet.base.fronts import lazy_names

__version__ = "0.2.0"

_PUBLIC = {
    # configuration (relunet.config)
    **dict.fromkeys(
        (
            "AugmentConfig",
            "CompareConfig",
            "EvaluateConfig",
            "ExportConfig",
            "ModelConfig",
            "OptimConfig",
            "PRESETS",
            "PredictConfig",
            "ServeConfig",
            "TrainConfig",
            "TuneConfig",
        ),
        "relunet.config",
    ),
    "SERIES": "relunet.config.series",
    "RelunetError": "relunet.base.errors",
    "import_tensorflow_quietly": "relunet.base.quiet",
    # the lab's network and its functions (relunet.training)
    **dict.fromkeys(
        (
            "ReluNet",
            "accuracy_fn",
            "build_model",
            "calibrated",
            "grad",
            "kernel_grad_norms",
            "load_model",
            "loss_fn",
        ),
        "relunet.training.model",
    ),
    "train": "relunet.training.train",
    "make_callbacks": "relunet.training.callbacks",
    "AtomicBackupAndRestore": "relunet.training.backup",
    "make_strategy": "relunet.training.distribute",
    "shard_by_data": "relunet.training.distribute",
    # the data (relunet.data names the rest)
    **dict.fromkeys(
        ("EpochCounter", "evaluation_pipeline", "find_source", "load_tfds", "training_pipeline"),
        "relunet.data",
    ),
    # searches and comparisons (relunet.experiments)
    "tune": "relunet.experiments.tune",
    "ReluNetHyperModel": "relunet.experiments.tune",
    "compare": "relunet.experiments.compare",
    # using a trained model (relunet.inference), and reading images (relunet.reading)
    "export_saved_model": "relunet.inference.export",
    "load_classifier": "relunet.inference.classifier",
    "predict": "relunet.inference.predict",
    "evaluate": "relunet.inference.evaluate",
    "read_digits": "relunet.reading.digits",
}

__all__ = sorted(_PUBLIC)


__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
