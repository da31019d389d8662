"""Configuration as plain values: each command's config, composed of field groups; named series.
May import: base."""

# The groups (relunet.config.fields) declare each field once, with its default and its
# help; the commands' configs compose them and add their own: train, tune and compare
# one module each, using for the commands that use a trained model, and series for the
# networks `relunet compare --series` trains. relunet.cli builds the command line from
# these fields, a run dir's config.json is `asdict` of one, and nothing here imports
# TensorFlow, so the command line checks flags in milliseconds.

from relunet.config.compare import CompareConfig
from relunet.config.fields import (
    ACTIVATIONS,
    DATASETS,
    INITS,
    JIT_MODES,
    LR_SCHEDULES,
    NO_SPLIT,
    AugmentConfig,
    DataConfig,
    LayerConfig,
    ModelConfig,
    OptimConfig,
    SourceConfig,
    check_numbers,
    differences,
    field_defaults,
    field_kinds,
    flags_of,
    option,
    take,
)
from relunet.config.train import PRESETS, STRATEGIES, TrainConfig
from relunet.config.tune import (
    BATCH_SIZE_CHOICES,
    DEPTH_RANGE,
    DROPOUT_CHOICES,
    LABEL_SMOOTHING_CHOICES,
    SEARCHABLE,
    TUNERS,
    WIDTH_STEP,
    TuneConfig,
)
from relunet.config.using import EvaluateConfig, ExportConfig, PredictConfig, ServeConfig

__all__ = [
    "ACTIVATIONS",
    "BATCH_SIZE_CHOICES",
    "DATASETS",
    "DEPTH_RANGE",
    "DROPOUT_CHOICES",
    "INITS",
    "JIT_MODES",
    "LABEL_SMOOTHING_CHOICES",
    "LR_SCHEDULES",
    "NO_SPLIT",
    "PRESETS",
    "SEARCHABLE",
    "STRATEGIES",
    "TUNERS",
    "WIDTH_STEP",
    "AugmentConfig",
    "CompareConfig",
    "DataConfig",
    "EvaluateConfig",
    "ExportConfig",
    "LayerConfig",
    "ModelConfig",
    "OptimConfig",
    "PredictConfig",
    "ServeConfig",
    "SourceConfig",
    "TrainConfig",
    "TuneConfig",
    "check_numbers",
    "differences",
    "field_defaults",
    "field_kinds",
    "flags_of",
    "option",
    "take",
]
