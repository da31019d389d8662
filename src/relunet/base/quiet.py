"""Import TensorFlow without the start-up chatter it prints on a CPU-only machine.

TensorFlow 2.21 writes a few lines on every import (oneDNN, CUDA drivers not found,
cuInit failed, CPU instructions) before its own log level applies, so
TF_CPP_MIN_LOG_LEVEL cannot hide them. The `relunet` command owns its process's stderr,
so it imports TensorFlow through `import_tensorflow_quietly` and runs each command in
`filtered_stderr`; the benchmarks and the notebooks call `import_tensorflow_quietly`
themselves, where they choose to. Importing relunet does neither: a library leaves
its importer's stderr and logging alone. Anything else TensorFlow prints still passes.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator

# The messages libjpeg-turbo prints to stderr on its own (its jerror.h), as they begin.
_LIBJPEG = "|".join(
    (
        r"Corrupt JPEG data: ",
        r"Premature end of (JPEG|input) file",
        r"Invalid (SOS parameters|JPEG file structure|component ID|progressive parameters)",
        r"Inconsistent progression sequence",
        r"Unknown Adobe color transform",
        r"Warning: (unknown JFIF revision|thumbnail image size)",
        r"Application transferred too (many|few) scanlines",
        r"Not a JPEG file: ",
        r"Unsupported (JPEG (process|data precision)|marker type|color conversion)",
        r"Bogus ",
        r"(Huffman|Quantization|Arithmetic) table 0x",
        r"Empty (JPEG image|input file)",
        r"JPEG datastream contains no image",
        r"Maximum supported image dimension",
        r"Sampling factors too large",
        r"Improper call to JPEG library",
        r"Insufficient memory \(case",
        r"Missing Huffman code table entry",
        r"Huffman code size table overflow",
        r"DCT coefficient out of range",
        r"Didn't expect more than one scan",
        r"Too many color components",
        r"Image too wide for this implementation",
        r"Scan script does not transmit all data",
    )
)
_TF_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations are on|"
    r"cudart_stub\.cc|Could not find cuda drivers|failed call to cuInit|"
    r"This TensorFlow binary is optimized to use available CPU instructions|"
    r"To enable the following instructions: .*rebuild TensorFlow|"
    r"oneDNN supports DT_(BOOL|INT32) only on platforms with AVX-512|"
    # XLA's persistent compilation cache, each time it loads an entry: it first tries
    # the text format, and it takes its own tuning flags for machine features.
    r"Error parsing text-format tensorflow\.XlaSerializedCacheEntry|"
    r"Loading XLA:CPU AOT result\. Target machine feature \+prefer-no-(scatter|gather) is not|"
    # TensorFlow's image decoders and libjpeg (in TensorFlow), on a broken image file: a
    # warning or an error, logged as it goes; relunet's own one line says what is wrong.
    r"(jpeg_mem|png_io|gif_io|decode_image_op)\.cc:\d+\] |"
    rf"^({_LIBJPEG})"
)


@contextlib.contextmanager
def quietly() -> Iterator[None]:
    """Run the block with file descriptor 2 captured, then pass on all but the noise."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    global _terminal_fd
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        outer = _terminal_fd
        if outer == 2:  # the outermost capture holds the terminal's stderr
            _terminal_fd = saved
        try:
            yield
        finally:
            _terminal_fd = outer
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not _TF_NOISE.search(line):
                    sys.stderr.write(line)


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Run the block with file descriptor 2 passed, line by line and as it comes, through
    a thread that drops the noise above: TensorFlow logs some of it long after import."""
    global _terminal_fd
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    saved = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    outer = _terminal_fd
    if outer == 2:
        _terminal_fd = saved
    pump = threading.Thread(target=_pass_all_but_noise, args=(read_end, saved), daemon=True)
    pump.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last write end closes: the pump reads to its end
        pump.join(timeout=10)
        _terminal_fd = outer
        os.close(saved)


def _pass_all_but_noise(read_end: int, terminal: int) -> None:
    with open(read_end, "rb") as pipe:
        for line in pipe:
            if not _TF_NOISE.search(line.decode(errors="replace")):
                try:
                    os.write(terminal, line)
                except OSError:
                    pass  # the terminal is gone; keep draining so writers never block


def say_now(line: str) -> None:
    """Write one line to the real stderr at once, even while `quietly` holds it: for a
    signal handler about to end the process."""
    os.write(_terminal_fd, f"{line}\n".encode())


_terminal_fd = 2


def after_import(tf) -> None:
    """What TensorFlow prints lazily: probe its devices (the CUDA probe) while quiet, and
    keep the Python-side chatter of TensorFlow, tfds and absl (INFO lines about assets
    written, tf.function retracing warnings, a tfds folder note) to errors."""
    global _settled
    if _settled:
        return
    _settled = True
    with quietly():
        tf.config.list_physical_devices()
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    tf.get_logger().setLevel("ERROR")


_settled = False


def import_tensorflow_quietly() -> None:
    """Import TensorFlow (and probe its devices) with stderr filtered for known noise."""
    with quietly():
        import tensorflow as tf
    after_import(tf)
