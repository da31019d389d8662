"""Data: where MNIST comes from (tfds, IDX files, a PyPI copy) and what training is fed.
May import: base, config, imaging."""

# The names below load on first use (as relunet's own do), so `from relunet import data`
# and `relunet.data.idx` cost no TensorFlow until a pipeline is asked for.

from relunet.base.fronts import lazy_names

_PUBLIC = {
    **dict.fromkeys(("Source", "default_tfds_dir"), "relunet.data.sources"),
    "find_source": "relunet.data.prepare",
    **dict.fromkeys(
        ("Arrays", "Splits", "load_arrays", "load_splits", "load_tfds", "split_arrays"),
        "relunet.data.splits",
    ),
    **dict.fromkeys(
        (
            "AUTOTUNE",
            "EpochCounter",
            "PipelineConfig",
            "evaluation_pipeline",
            "normalize",
            "rest_of_epoch",
            "steps_per_epoch",
            "to_inputs",
            "training_pipeline",
        ),
        "relunet.data.pipelines",
    ),
}

__all__ = sorted(_PUBLIC)


__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
