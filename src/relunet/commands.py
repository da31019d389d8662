"""What each `relunet` command does with its config (the flags parsed by relunet.cli).

Each runs its command's one preflight (relunet.preflight: flags, then paths) before
TensorFlow is imported (a few seconds), so a typo is answered at once, then imports
what it needs, runs, and prints what the user reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator

from relunet import preflight
from relunet.base.quiet import import_tensorflow_quietly, say_now
from relunet.config import (
    CompareConfig,
    EvaluateConfig,
    ExportConfig,
    PredictConfig,
    ServeConfig,
    TrainConfig,
    TuneConfig,
)
from relunet.experiments import trials

START = time.time()  # once the command's own (light) modules are in: a timeline's origin

# EX_TEMPFAIL: stopped by a signal after a final backup, or a worker was lost; rerun to
# resume
PREEMPTED = 75


def train(config: TrainConfig) -> int:
    config = preflight.train(config)
    with _signals_end_the_run("train", " outside training"):
        _import_tensorflow()
        from relunet.training.train import run

        run(config, timeline={"cli": START, "imports": time.time()})
        _ignore_signals()  # the results are written: nothing is left to interrupt
    return 0


def tune(config: TuneConfig) -> int:
    config = preflight.tune(config)
    if config.summary:  # the table of an existing search: no TensorFlow needed
        trials.summarize(trials.project_dir(config), from_outside=True)
        return 0
    with _signals_end_the_run("tune"):  # a trial continues from its newest backup
        _import_tensorflow()
        from relunet.experiments.tune import run

        run(config)
    return 0


def compare(config: CompareConfig) -> int:
    config = preflight.compare(config)
    _import_tensorflow()
    from relunet.experiments.compare import run

    run(config)
    return 0


def export(config: ExportConfig) -> int:
    config = preflight.export(config)
    _import_tensorflow()
    from relunet.inference.export import run

    run(config)
    return 0


def predict(config: PredictConfig) -> int:
    config = preflight.predict(config)
    _import_tensorflow()
    from relunet.inference.predict import run_predict, said_in_words

    results = run_predict(config)
    if config.json:
        print(json.dumps(results, indent=2))
        return 0
    width = max(len(r["input"]) for r in results)
    for r in results:
        print(f"{r['input']:<{width}}  {said_in_words(r)}")
    return 0


def evaluate(config: EvaluateConfig) -> int:
    config = preflight.evaluate(config)
    _import_tensorflow()
    from relunet.inference.evaluate import run_evaluate, summary

    result = run_evaluate(config, verbose=not config.json)
    if config.json:
        print(json.dumps(result, indent=2))
        return 0
    print(summary(result))
    if config.report:
        from relunet.inference.report import format_scores

        print(format_scores(result["per_class"]))
        print(f"report: {', '.join(result['report'].values())}")
    return 0


def serve(config: ServeConfig) -> int:
    config = preflight.serve(config)
    _import_tensorflow()
    from relunet.serve.server import run

    run(config)
    return 0


@contextlib.contextmanager
def _signals_end_the_run(command: str, where: str = "") -> Iterator[None]:
    """SIGTERM and SIGINT end the process at once with status 75: every file is written
    atomically and the run dir's lock dies with the process, so the next run continues
    from the last backup (a search: each trial from its newest). The handler exits rather
    than raising, because an exception raised inside an import or a library call can be
    caught and turned into another error there, or swallowed (keras-tuner's trials lost
    a Ctrl-C that way). Inside a `relunet train` run's `fit`, the StopOnSignal callback
    takes over (finish the chunk, back up, stop) and puts these handlers back after."""

    def stop(signum, frame):
        with contextlib.suppress(Exception):  # keep what was printed; a write may be under way
            sys.stdout.flush()
        say_now(
            f"relunet {command}: interrupted: {signal.Signals(signum).name} received{where}; "
            "every file written is whole; rerun the same command to resume"
        )
        os._exit(PREEMPTED)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _import_tensorflow() -> None:
    """Import TensorFlow quietly, with XLA's persistent compilation cache on: a run of a
    network compiled before skips compiling it (measured: about 1 s a run). The cache
    lives in $RELUNET_XLA_CACHE (default ~/.cache/relunet/xla; "off" turns it off)."""
    where = os.environ.get("RELUNET_XLA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "relunet", "xla"
    )
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if where != "off" and "tf_xla_persistent_cache_directory" not in flags:
        os.environ["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={where}".strip()
    import_tensorflow_quietly()


def _ignore_signals() -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)
