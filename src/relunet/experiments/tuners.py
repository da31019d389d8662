"""keras-tuner's tuners as `relunet tune` runs them: each trial's record (seconds, epochs,
memory, where it resumed), its backups removed and a progress line printed as it ends,
what it built freed, and a trial a kill interrupted in keras-tuner's bookkeeping run once.
"""

from __future__ import annotations

import gc
import math
import sys
import time
from pathlib import Path

import keras_tuner

from relunet.base import _compat
from relunet.base.files import write_json_atomic
from relunet.config import TuneConfig
from relunet.experiments import trial_resume, trials
from relunet.training.runtime import resident_memory_mb


class RecordsTrials:
    """Mixed into each tuner: record how long each trial ran, for how many epochs, and
    why it failed if it did; free what the trial built when it ends; print a progress
    line; and never rerun a trial that already ended."""

    def reload(self):
        super().reload()
        _compat.requeue_trials_a_kill_interrupted(self.oracle)

    def run_trial(self, trial, *args, **kwargs):
        start, results = time.perf_counter(), []
        self.hypermodel.execution = 0
        self.hypermodel.trial_dir = self.get_trial_dir(trial.trial_id)
        self.hypermodel.last_fit = {}
        try:
            # keras-tuner drops the trial's models, but TensorFlow would keep their graphs
            # and variables for good: 2 MB a trial of width 16 (benchmarks/README.md).
            with _compat.forget_custom_gradients_traced_in_block():
                results = super().run_trial(trial, *args, **kwargs)
            return results
        finally:
            epochs = [len(r.history.get("loss", [])) for r in results if hasattr(r, "history")]
            diverged = any(isinstance(r, dict) and math.isnan(sum(r.values())) for r in results)
            seconds = round(time.perf_counter() - start, 2)
            results = None  # the histories hold the last model
            gc.collect()
            write_json_atomic(
                Path(self.get_trial_dir(trial.trial_id)) / trials.TRIAL_TIMING,
                {
                    "seconds": seconds,
                    "epochs": max(epochs) if epochs else None,
                    "failure": "the loss became NaN" if diverged else None,
                    "tuner_id": self.tuner_id,  # which process ran it, in a distributed search
                    "step": self.hypermodel.last_step,
                    "memory_mb": resident_memory_mb(),  # this process's, as the trial ended
                    **self.hypermodel.last_fit,  # where it resumed after a kill, and its steps
                },
            )

    def on_trial_end(self, trial):
        super().on_trial_end(trial)  # the oracle records the trial as ended
        trial_resume.remove_backups(self.get_trial_dir(trial.trial_id))  # only then
        c = self.hypermodel.config
        trials.print_progress(trials.project_dir(c), trial.trial_id, c.max_trials, c.tuner)


class RandomSearch(RecordsTrials, keras_tuner.RandomSearch):
    pass


class Hyperband(RecordsTrials, keras_tuner.Hyperband):
    pass


class BayesianOptimization(RecordsTrials, keras_tuner.BayesianOptimization):
    pass


def make_tuner(config: TuneConfig, hypermodel: keras_tuner.HyperModel) -> keras_tuner.Tuner:
    """The configured keras-tuner tuner; it reloads an existing project unless overwrite."""
    common = dict(
        hypermodel=hypermodel,
        objective=keras_tuner.Objective(config.objective, direction="max"),
        executions_per_trial=config.executions_per_trial,
        seed=config.seed,
        directory=config.directory,
        project_name=config.project_name,
        overwrite=config.overwrite,
        # A failed (NaN) trial is recorded and the search goes on to max_trials.
        max_consecutive_failed_trials=config.max_trials + 1,
    )
    if config.tuner == "hyperband":
        tuner = Hyperband(max_epochs=config.epochs, factor=3, **common)
        if isinstance(tuner.oracle, keras_tuner.Oracle):  # on the chief, or when alone
            tuner.oracle.max_trials = config.max_trials
        return tuner
    if config.tuner == "bayesian":
        warn_if_bayesian_is_random(config)
        return BayesianOptimization(max_trials=config.max_trials, **common)
    return RandomSearch(max_trials=config.max_trials, **common)


def warn_if_bayesian_is_random(config: TuneConfig) -> None:
    """keras-tuner's Bayesian search draws max(3, 3 x hyperparameters) random trials
    before its model guides it: fewer trials than that are a random search."""
    initial = max(3, 3 * len(config.search))
    if config.max_trials <= initial:
        print(
            f"relunet tune: warning: bayesian search starts with {initial} random trials "
            f"for {len(config.search)} searched hyperparameters, so --max-trials "
            f"{config.max_trials} makes it a random search; give it more than {initial}.",
            file=sys.stderr,
            flush=True,
        )
