"""Import TensorFlow without the start-up chatter it prints on a CPU-only machine.

TensorFlow 2.21 writes a few lines on every import (oneDNN, CUDA drivers not found,
cuInit failed) before its own log level applies, so TF_CPP_MIN_LOG_LEVEL cannot hide
them. The command line and the benchmarks import it through here instead; anything
else TensorFlow prints still passes.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

_TF_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations are on|"
    r"cudart_stub\.cc|Could not find cuda drivers|failed call to cuInit"
)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow (and probe its devices) with stderr filtered for known noise."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probe happens here
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not _TF_NOISE.search(line):
                    sys.stderr.write(line)
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
