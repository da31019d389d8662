"""The one exception type the command line turns into a one-line message and exit status 2."""


class RelunetError(Exception):
    """Bad input from the user: a flag, a path, a data file or a model that cannot be used.

    The message is a full sentence that names the problem; the CLI prints it on one line
    and exits with status 2, and nothing the user had is changed.
    """
