"""Data-parallel training with tf.distribute: the same `fit`, on more devices or hosts.

`relunet train --strategy mirrored` copies the model onto every visible GPU (or onto
`--cpu-replicas N` logical CPU devices, which is how the tests run it) and splits each
global batch between them; `--strategy multiworker` does the same across processes or
machines described by the standard `TF_CONFIG` variable. What makes the lab's
`train_step` correct under either is in `relunet.model.grad`: each replica's mean loss
is weighted by its share of the global batch, and the optimizer sums the gradients.

Only the chief writes the run dir. The other workers run the very same callbacks
(saving can involve collective reads, so every worker must take part) into a scratch
folder of their own, which is removed when they finish, the pattern of TensorFlow's
multi-worker guide.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import tensorflow as tf

from relunet.config import TrainConfig, worker_task
from relunet.errors import RelunetError


def make_strategy(config: TrainConfig) -> tf.distribute.Strategy:
    """The strategy `config.strategy` names. Call it before TensorFlow has run anything:
    logical CPU devices and the multi-worker runtime can only be set up then."""
    if config.strategy == "default":
        return tf.distribute.get_strategy()
    if config.strategy == "multiworker":
        worker_task()  # a one-line error for a bad TF_CONFIG, before TensorFlow reads it
        return tf.distribute.MultiWorkerMirroredStrategy()
    if config.cpu_replicas:
        return tf.distribute.MirroredStrategy(_logical_cpus(config.cpu_replicas))
    return tf.distribute.MirroredStrategy()


def _logical_cpus(count: int) -> list[str]:
    """Split the first CPU into `count` logical devices and name them."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError:  # TensorFlow has started; fine if it already has these devices
        if len(tf.config.list_logical_devices("CPU")) != count:
            raise RelunetError(
                f"cpu_replicas={count} must be set before TensorFlow starts (in a notebook, "
                "restart the kernel and create the strategy first)."
            ) from None
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def task(strategy: tf.distribute.Strategy) -> tuple[str, int] | None:
    """(task type, index) of this process in a multi-worker cluster; None outside one."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return None
    return resolver.task_type, resolver.task_id


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the one process that writes results: the only one, or the cluster's chief
    (task `chief`, or worker 0 when the cluster names no chief)."""
    this = task(strategy)
    if this is None or this[0] == "chief":
        return True
    has_chief = "chief" in strategy.cluster_resolver.cluster_spec().as_dict()
    return this == ("worker", 0) and not has_chief


def describe(strategy: tf.distribute.Strategy) -> str:
    """One line for the console: the strategy, its replicas and this process's role."""
    name = type(strategy).__name__
    replicas = strategy.num_replicas_in_sync
    this = task(strategy)
    if this is not None:
        role = "chief" if is_chief(strategy) else "non-chief"
        return (f"MultiWorkerMirroredStrategy, {replicas} replicas; this is "
                f"{this[0]} {this[1]} ({role})")
    devices = ", ".join(d.split("device:")[-1] for d in strategy.extended.worker_devices)
    return f"{name}, {replicas} replica{'s' if replicas > 1 else ''} ({devices})"


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Wait until every worker of a multi-worker job gets here (an all-reduce of a 1), so
    that they leave together and none logs the others' exit as a crash."""
    if task(strategy) is not None:
        try:
            tf.function(lambda: strategy.reduce(
                tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None))()
        except (tf.errors.UnavailableError, tf.errors.AbortedError):
            pass  # another worker has already gone: there is no one left to wait for


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Auto-shard by DATA: every worker builds the whole (in-memory, seeded) pipeline and
    keeps its part of each global batch.

    The splits come from arrays in memory, not files, so there is nothing for the FILE
    policy to split (AUTO would fall back to DATA with a warning). Because every worker
    shuffles with the same seed, the parts of one global batch are exactly the batch a
    single device would see.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    sharded = dataset.with_options(options)
    if hasattr(dataset, "next_epoch"):  # a training pipeline: fit still says which epoch
        sharded.next_epoch = dataset.next_epoch
    return sharded


def scratch_dir(run_dir: str, this: tuple[str, int]) -> Path:
    """The folder a non-chief worker writes into: in the temp dir, named after the run dir
    and the task, so a worker restarted after a crash finds and clears its old one."""
    digest = hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"relunet-{digest}-{this[0]}{this[1]}"


@contextlib.contextmanager
def writing_dir(run_dir: str, strategy: tf.distribute.Strategy) -> Iterator[Path]:
    """Where this process writes: the run dir for the chief, else its scratch folder,
    emptied first and removed afterwards (a SIGKILL leaves it to the next start)."""
    if is_chief(strategy):
        yield Path(run_dir)
        return
    scratch = scratch_dir(run_dir, task(strategy))
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
