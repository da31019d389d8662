"""Request batching, as TF Serving's `--enable_batching` does it: concurrent requests to
one signature of one version run as one model call.

Each signature has a queue; `threads` threads (TF Serving's `num_batch_threads`) take
batches from the queues, the oldest first: a batch is a queue's oldest requests, as
many as fit in `max_batch_size` images, taken once a thread is free and the batch is
full or its oldest request has waited `timeout` seconds (`batch_timeout_micros`). With
no wait (the default), a lone request runs at once, and the requests that arrive while
every thread is busy run together next: the busier the server, the larger its batches.
A request of more images than `max_batch_size` runs alone, whole. A batch whose call
fails is run again one request at a time, so a bad request fails alone.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

# run(inputs of several requests) -> one answer per request, in their order
Run = Callable[[list[Any]], list[Any]]


@dataclass(frozen=True)
class Batch:
    """How a request was run: with how many requests and images, on which thread."""

    requests: int
    images: int
    thread: int

    def __str__(self) -> str:  # the X-Relunet-Batch header
        return f"requests={self.requests}, images={self.images}, thread={self.thread}"


@dataclass
class _Task:
    inputs: Any
    images: int
    future: Future
    arrived: float


class _Queue:
    def __init__(self, run: Run):
        self.run, self.tasks, self.images = run, deque(), 0


class Batcher:
    """Queues requests per key (a version's signature) and runs them in batches."""

    def __init__(self, max_batch_size: int, timeout: float, threads: int):
        self.max_batch_size, self.timeout = max_batch_size, timeout
        self._queues: dict[Hashable, _Queue] = {}
        self._changed = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, args=(n,), name=f"relunet-batch-{n}", daemon=True)
            for n in range(1, threads + 1)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, key: Hashable, run: Run, inputs: Any, images: int) -> Future:
        """Queue one request of `images` images; its future gets (answer, Batch), or the
        exception its call raised."""
        future: Future = Future()
        with self._changed:
            queue = self._queues.get(key) or self._queues.setdefault(key, _Queue(run))
            queue.tasks.append(_Task(inputs, images, future, time.monotonic()))
            queue.images += images
            self._changed.notify()
        return future

    def waiting(self) -> int:
        """Requests queued, not yet taken by a batch thread."""
        with self._changed:
            return sum(len(queue.tasks) for queue in self._queues.values())

    def close(self, wait: bool = True) -> None:
        """Let the threads finish the batch they run (unless `wait` is False), and stop."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        for thread in self._threads if wait else ():
            thread.join(timeout=10)

    def _work(self, number: int) -> None:
        while True:
            with self._changed:
                while not (taken := self._take()):
                    if self._closed:
                        return
                    self._changed.wait(self._wait())
            queue, tasks = taken
            self._run(queue.run, tasks, number)

    def _take(self) -> tuple[_Queue, list[_Task]] | None:
        """The oldest batch that is ready, taken off its queue."""
        now, chosen = time.monotonic(), None
        for queue in self._queues.values():
            if not queue.tasks:
                continue
            head = queue.tasks[0].arrived
            ready = queue.images >= self.max_batch_size or now - head >= self.timeout
            if ready and (chosen is None or head < chosen.tasks[0].arrived):
                chosen = queue
        if chosen is None:
            return None
        tasks, images = [], 0
        while chosen.tasks and (
            not tasks or images + chosen.tasks[0].images <= self.max_batch_size
        ):
            task = chosen.tasks.popleft()
            chosen.images -= task.images
            if task.future.set_running_or_notify_cancel():  # False: its client has gone
                tasks.append(task)
                images += task.images
        return (chosen, tasks) if tasks else self._take()

    def _wait(self) -> float | None:
        """Seconds until the oldest waiting batch is due (None: nothing waits)."""
        heads = [q.tasks[0].arrived for q in self._queues.values() if q.tasks]
        return max(0.0, min(heads) + self.timeout - time.monotonic()) if heads else None

    def _run(self, run: Run, tasks: list[_Task], thread: int) -> None:
        try:
            answers = run([task.inputs for task in tasks])
        except Exception as error:  # the client gets the reason, as its own answer
            if len(tasks) > 1:  # one bad request must not fail the others
                for task in tasks:
                    self._run(run, [task], thread)
            else:
                tasks[0].future.set_exception(error)
            return
        batch = Batch(len(tasks), sum(task.images for task in tasks), thread)
        for task, one in zip(tasks, answers, strict=True):
            task.future.set_result((one, batch))
