"""Where a run trains: one device, or replicas under a tf.distribute strategy.

`relunet.training.train` asks one `Devices` object everything that differs between the
two: which strategy builds the model, how datasets are sharded, where this process
writes, when processes wait for each other, and what a signal or a lost worker does.
`OneDevice` answers for the default; `Replicas` for `--strategy mirrored|multiworker`.

Under replicas only the chief writes the run dir. The other workers run the very same
callbacks (saving can involve collective reads, so every worker must take part) into
a scratch folder of their own, which is removed when they finish, the pattern of
TensorFlow's multi-worker guide.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import tensorflow as tf

from relunet.base.errors import RelunetError, WorkerLost
from relunet.config import TrainConfig
from relunet.training.backup import AtomicBackupAndRestore
from relunet.training.callbacks import StopOnSignal
from relunet.training.distribute.cluster import worker_task


class OneDevice:
    """The default: this process trains on its one device and writes its run dir."""

    chief = True

    def __init__(self, strategy: tf.distribute.Strategy | None = None):
        self.strategy = strategy or tf.distribute.get_strategy()

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    def describe(self) -> str | None:
        """One line for the console, or None when there is nothing to say."""
        return None

    def shard(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        return dataset

    @contextlib.contextmanager
    def writing_dir(self, run_dir: str | Path) -> Iterator[Path]:
        """Where this process writes: the run dir itself."""
        yield Path(run_dir)

    def barrier(self) -> None:
        """Wait for the other processes of the job: there are none."""

    def on_signal(self, backup: AtomicBackupAndRestore) -> contextlib.AbstractContextManager:
        """SIGTERM and SIGINT finish the chunk, back up and stop (a StopOnSignal callback)."""
        return StopOnSignal(backup)

    @contextlib.contextmanager
    def lost_workers(self, backup: AtomicBackupAndRestore) -> Iterator[None]:
        """Around fit: what a lost worker does. One device has none to lose."""
        yield


class Replicas(OneDevice):
    """Replicas under MirroredStrategy or MultiWorkerMirroredStrategy."""

    def __init__(self, strategy: tf.distribute.Strategy, run_dir: str | Path):
        super().__init__(strategy)
        self.task = task(strategy)  # (type, index) in a cluster; None on one machine
        self.chief = is_chief(strategy)
        self.run_dir = Path(run_dir)

    def describe(self) -> str:
        return f"tf.distribute {describe(self.strategy)}; without XLA, one step per execution"

    def shard(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        return shard_by_data(dataset)

    @contextlib.contextmanager
    def writing_dir(self, run_dir: str | Path) -> Iterator[Path]:
        """The run dir for the chief; else a scratch folder, emptied first and removed
        afterwards (a SIGKILL leaves it to the next start)."""
        if self.chief:
            yield Path(run_dir)
            return
        scratch = scratch_dir(str(run_dir), self.task)
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        try:
            yield scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def barrier(self) -> None:
        """Wait until every worker of a multi-worker job gets here (an all-reduce of a 1),
        so that they leave together and none logs the others' exit as a crash."""
        if self.task is None:
            return
        strategy = self.strategy
        try:
            tf.function(
                lambda: strategy.reduce(
                    tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None
                )
            )()
        except (tf.errors.UnavailableError, tf.errors.AbortedError):
            pass  # another worker has already gone: there is no one left to wait for

    def on_signal(self, backup: AtomicBackupAndRestore) -> contextlib.AbstractContextManager:
        # One worker alone cannot stop a multi-worker step: there a signal ends the
        # process and the job resumes from the last periodic backup.
        if self.task is not None:
            return contextlib.nullcontext(None)
        return StopOnSignal(backup)

    @contextlib.contextmanager
    def lost_workers(self, backup: AtomicBackupAndRestore) -> Iterator[None]:
        try:
            yield
        except (tf.errors.UnavailableError, tf.errors.AbortedError) as error:
            if self.task is None:
                raise
            epoch, step = backup.position
            raise WorkerLost(
                f"another worker stopped during epoch {epoch + 1}, step {step} "
                f"({type(error).__name__}); start every worker again with the same command "
                "to resume from the last backup"
            ) from None


Devices = OneDevice  # the interface train() relies on


def devices_for(config: TrainConfig) -> OneDevice:
    """The devices `config.strategy` names. Call it before TensorFlow has run anything:
    logical CPU devices and the multi-worker runtime can only be set up then."""
    if config.strategy == "default":
        return OneDevice()
    return Replicas(make_strategy(config), config.run_dir)


def make_strategy(config: TrainConfig) -> tf.distribute.Strategy:
    """The strategy `config.strategy` names (see devices_for)."""
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
    """The strategy, its replicas and this process's role."""
    name = type(strategy).__name__
    replicas = strategy.num_replicas_in_sync
    this = task(strategy)
    if this is not None:
        role = "chief" if is_chief(strategy) else "non-chief"
        return (
            f"MultiWorkerMirroredStrategy, {replicas} replicas; this is "
            f"{this[0]} {this[1]} ({role})"
        )
    devices = ", ".join(d.split("device:")[-1] for d in strategy.extended.worker_devices)
    return f"{name}, {replicas} replica{'s' if replicas > 1 else ''} ({devices})"


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
    return dataset.with_options(options)


def scratch_dir(run_dir: str, this: tuple[str, int]) -> Path:
    """The folder a non-chief worker writes into: in the temp dir, named after the run dir
    and the task, so a worker restarted after a crash finds and clears its old one."""
    digest = hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"relunet-{digest}-{this[0]}{this[1]}"
