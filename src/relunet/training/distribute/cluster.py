"""This process's place in a multi-worker cluster, from the TF_CONFIG variable that
MultiWorkerMirroredStrategy reads. No TensorFlow here: a bad TF_CONFIG is reported in
one line before TensorFlow starts (and before it would read the variable itself)."""

from __future__ import annotations

import json
import os

from relunet.base.errors import RelunetError


def worker_task(environ: dict[str, str] | None = None) -> tuple[str, int, int]:
    """(task type, task index, number of training tasks) from TF_CONFIG; RelunetError
    naming the problem if it is missing or unusable."""
    text = (os.environ if environ is None else environ).get("TF_CONFIG")
    if not text:
        raise RelunetError(
            "strategy 'multiworker' needs the TF_CONFIG environment variable "
            "(cluster and task; see docs/distribute.md)."
        )
    try:
        tf_config = json.loads(text)
        cluster, task = tf_config["cluster"], tf_config["task"]
        task_type, index = task["type"], int(task["index"])
        tasks = {kind: list(cluster[kind]) for kind in ("chief", "worker") if kind in cluster}
    except (ValueError, KeyError, TypeError) as error:
        raise RelunetError(
            f"TF_CONFIG is not a cluster and task description ({error!r})."
        ) from None
    if task_type not in tasks or not 0 <= index < len(tasks[task_type]):
        raise RelunetError(
            f"TF_CONFIG's task {task_type} {index} is not in its cluster "
            f"({', '.join(f'{len(v)} {k}' for k, v in tasks.items()) or 'empty'})."
        )
    for address in (a for addresses in tasks.values() for a in addresses):
        _check_address(address)
    return task_type, index, sum(len(v) for v in tasks.values())


def _check_address(address: object) -> None:
    """A cluster address is host:port with a port TensorFlow can listen on or reach."""
    host, _, port = str(address).rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise RelunetError(
            "TF_CONFIG's cluster addresses must be host:port with a port from 1 to "
            f"65535. Received: {address!r}."
        )
