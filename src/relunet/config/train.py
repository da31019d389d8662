"""`relunet train`'s config, and its presets.

    TrainConfig     Data + Model + Optim + Augment + the run (run dir, backups, devices)

`validate()` checks the values; the checks of paths and files are `relunet.preflight`'s.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from relunet.base.errors import RelunetError
from relunet.base.values import (
    check_choice,
    check_count,
    check_fits_in_memory,
    check_whole_from_zero,
)
from relunet.config.fields import (
    NO_SPLIT,
    AugmentConfig,
    DataConfig,
    ModelConfig,
    OptimConfig,
    check_numbers,
    check_verbose,
    differences,
    option,
)

STRATEGIES = (
    "default",
    "mirrored",
    "multiworker",
)  # tf.distribute; see relunet.training.distribute
MAX_CPU_REPLICAS = 64  # each logical CPU device costs memory; more is a typo
MAX_FINDER_STEPS = 10_000_000  # a week of a 2-core machine's time; more is a typo


@dataclass
class TrainConfig(AugmentConfig, OptimConfig, ModelConfig, DataConfig):  # flags in this order
    """Everything `relunet train` needs."""

    run_dir: str | None = option(
        None,
        "where the run lives; rerun with the same one to resume (default: the newest "
        "unfinished run of this configuration in runs/, else a new runs/<timestamp>)",
        metavar="DIR",
        fingerprint=False,
    )
    backup_every: int = option(100, "steps between backups, besides one per epoch")
    finder_steps: int = option(
        0,
        "after the digit model, train the finder (where each digit of a row is, so that "
        "digits that lean, crowd and touch are read) for this many steps of 64 rows "
        "drawn from the training split; 0: none (each group of ink apart is one digit)",
    )
    restart: bool = option(
        False,
        "discard the run dir's progress (and an unusable backup) and train from the start",
        fingerprint=False,
    )
    grad_norms: bool = option(
        False, "also log each Dense kernel's gradient norm per epoch (grad_norm/dense_0, ...)"
    )
    strategy: str = option(
        "default",
        "tf.distribute: one device, mirrored over local devices, or multiworker as TF_CONFIG says",
        choices=STRATEGIES,
        fingerprint=False,
    )  # the global batch is the same
    cpu_replicas: int | None = option(
        None,
        "with --strategy mirrored: split the CPU into N logical devices (to test that path)",
        fingerprint=False,
    )
    verbose: int | None = option(
        None,
        "0 silent, 1 progress bar, 2 one line per epoch (default: 1 on a terminal, else 2)",
        fingerprint=False,
    )

    def validate(self) -> TrainConfig:
        """Raise RelunetError naming the first bad field; return self so calls chain."""
        check_numbers(self)
        self.check_data()
        self.check_model()
        self.check_optim()
        self.check_augment()
        check_count("backup_every", self.backup_every)
        check_whole_from_zero("finder_steps", self.finder_steps, MAX_FINDER_STEPS, " (no finder)")
        check_choice("strategy", self.strategy, STRATEGIES)
        if self.cpu_replicas is not None:
            check_count("cpu_replicas", self.cpu_replicas, MAX_CPU_REPLICAS)
            if self.strategy != "mirrored":
                raise RelunetError(
                    f"cpu_replicas needs strategy 'mirrored'. Received strategy: {self.strategy!r}."
                )
        if self.strategy == "multiworker" and self.finder_steps:
            raise RelunetError(
                "finder_steps trains the finder on one machine after the digit model; "
                "train it in a run without strategy 'multiworker'. "
                f"Received finder_steps={self.finder_steps}."
            )
        if self.strategy == "multiworker" and not self.run_dir:
            raise RelunetError(
                "strategy 'multiworker' needs a run_dir that every worker "
                "names (and can reach), e.g. --run-dir runs/job1."
            )
        check_verbose(self.verbose)
        check_fits_in_memory(self.width, self.depth, self.batch_size)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def differences(self, saved: dict[str, Any]) -> list[str]:
        """Fields that change training and differ from a saved config, as 'name: old -> new'."""
        return differences(self, saved)

    def fingerprint(self) -> str:
        """A digest of the fields that change training: a backup records the one it was
        written under, so a backup from another configuration is never resumed. Only
        fields away from their default count, so an option added with its default keeps
        the fingerprints of the runs made before it."""
        fields = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.metadata.get("fingerprint", True) and getattr(self, f.name) != f.default
        }
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


# Presets: hyperparameters chosen on the validation split (train[:90%] vs train[90%:]),
# then trained on all of train with no validation pass, backed up at epoch ends only (an
# epoch takes 1 to 2 s; mid-epoch backups cost about 0.5 s an epoch at width 512).
# Measured in benchmarks/bench_time_to_accuracy.py; the numbers are in
# benchmarks/README.md.
_FAST = dict(
    train_split="train",
    val_split=NO_SPLIT,
    init="he_normal",
    lr_schedule="cosine",
    label_smoothing=0.1,
    backup_every=10_000,
)
PRESETS = {
    "lab": {},  # the lab's own network and optimizer: the defaults
    # 98% within T + 8 s; batches of 256 train more images a second on a CPU than 128
    # (at 128 and 3e-3 it was the same accuracy, 1 s slower: benchmarks/README.md).
    "fast98": dict(_FAST, width=256, batch_size=256, learning_rate=4e-3, epochs=4),
    # 98.5% within T + 15 s (T: importing TensorFlow); until 0.2 it was 8 epochs at 2e-3,
    # 98.7% in twice the time (benchmarks/README.md has both).
    "best": dict(_FAST, width=512, learning_rate=3e-3, epochs=4),
    # Reads what people write, not only MNIST's test split: numbers, "not a digit" for
    # what is not one, calibrated probabilities (benchmarks/README.md has the figures).
    # A wide net, deskewed, trained on distorted digits (rotated, sheared, moved, strokes
    # thickened or thinned) with shapes that are not digits (relunet.data.nondigits) among
    # them, for 16 epochs; calibrated on the held-out train[55000:]. Elastic distortion
    # cost more time than it gave on real digits. Then the finder, which learns where each
    # digit of a row is (relunet.training.finder), on rows drawn from train[:55000].
    "robust": dict(
        _FAST,
        train_split="train[:55000]",
        val_split="train[55000:]",  # calibrates the probabilities and "not a digit"
        width=1024,
        learning_rate=3e-3,
        epochs=16,
        deskew=True,
        augment=0.75,
        rotation=20.0,
        shear=0.25,
        thickness=1.0,
        elastic_alpha=0.0,
        non_digits=0.5,
        finder_steps=3000,
    ),
}
