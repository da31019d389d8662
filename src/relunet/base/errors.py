"""The exceptions the command line turns into one line and an exit status. No TensorFlow
here, so the command line can catch them before it has imported any."""


class RelunetError(Exception):
    """Bad input from the user: a flag, a path, a data file or a model that cannot be used.

    The message is a full sentence that names the problem; the CLI prints it on one line
    and exits with status 2, and nothing the user had is changed.
    """


class Preempted(Exception):
    """SIGTERM or SIGINT stopped the run: in training after a final backup was written,
    elsewhere at once (nothing there needs one). Exit status 75: rerun to resume."""


class WorkerLost(RuntimeError):
    """Another worker of a multi-worker job stopped; the job resumes from its backup (75)."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite, so training stopped early (exit status 1)."""


class TuningFailed(RuntimeError):
    """Every trial of the search failed, so there is no best model to retrain (1)."""
