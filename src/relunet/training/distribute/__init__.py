"""Data-parallel training with tf.distribute: the same `fit`, on more devices or hosts.

`relunet train --strategy mirrored` copies the model onto every visible GPU (or onto
`--cpu-replicas N` logical CPU devices, which is how the tests run it) and splits each
global batch between them; `--strategy multiworker` does the same across processes or
machines described by the standard `TF_CONFIG` variable.

Everything that differs under a strategy sits behind one object, chosen once per run by
`devices_for(config)`: `OneDevice` for the default, whose methods do nothing special, or
`Replicas` (see `relunet.training.distribute.devices`). What makes the lab's
`train_step` correct under replicas is in
`relunet.training.model.scaled_to_global_batch`. `relunet.training.distribute.cluster`
reads TF_CONFIG without TensorFlow, so the command line reports a bad one at once; the
rest loads on first use.
"""

from relunet.base.fronts import lazy_names
from relunet.training.distribute.cluster import worker_task

_LAZY = {
    name: "relunet.training.distribute.devices"
    for name in (
        "Devices",
        "OneDevice",
        "Replicas",
        "WorkerLost",
        "devices_for",
        "make_strategy",
        "scratch_dir",
        "shard_by_data",
    )
}

__all__ = ["worker_task", *sorted(_LAZY)]


__getattr__, __dir__ = lazy_names(__name__, _LAZY)
