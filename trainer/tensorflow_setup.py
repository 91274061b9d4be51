"""Import TensorFlow for the commands that need it: a clear error when it is missing, and
none of its start-up noise on the user's terminal.

TensorFlow's C++ side writes straight to file descriptor 2 while it loads ("All log messages
before absl::InitializeLog() is called are written to STDERR", oneDNN and CUDA-stub notes) and
again when the first device is set up ("failed call to cuInit" on a machine without a GPU).
TF_CPP_MIN_LOG_LEVEL does not reach the messages logged before absl is initialised, so the
import and the device set-up run with descriptor 2 held back; the lines known to be noise are
dropped and anything else (a real error) is passed on.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator

# What a plain CPU machine prints every time; nothing a user has to act on.
NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called|"
    r"oneDNN custom operations are on|"
    r"cudart_stub\.cc.*Could not find cuda drivers|"
    r"failed call to cuInit|"
    r"Unable to register cu(DNN|FFT|BLAS) factory|"
    r"computation placer already registered|"
    r"This TensorFlow binary is optimized to use available CPU instructions|"
    r"To enable the following instructions: .* in other operations, rebuild TensorFlow|"
    r"TF-TRT Warning: Could not find TensorRT"
)
NEEDED = {"tensorflow": "TensorFlow", "keras": "Keras", "matplotlib": "matplotlib"}  # [train]


class TensorFlowMissing(Exception):
    """The `train` extra is not installed; the message is the one line to show."""


def check_training_extra(job: str) -> None:
    """Raise TensorFlowMissing naming `job` ("training", "export") when the extra is absent."""
    missing = [shown for name, shown in NEEDED.items() if importlib.util.find_spec(name) is None]
    if missing:
        raise TensorFlowMissing(f'{job} needs {missing[0]}: pip install "mnist-edge[train]"')


def import_tensorflow(job: str):
    """Import TensorFlow and Keras quietly and set up the CPU device; return the tf module."""
    check_training_extra(job)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ INFO and WARNING lines
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with _native_stderr_filtered(), _no_garbage_collection():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import keras  # noqa: F401  (its import loads TensorFlow's remaining libraries)
            import tensorflow as tf

        tf.config.list_logical_devices()  # the device set-up, where cuInit is tried
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    return tf


@contextlib.contextmanager
def _no_garbage_collection() -> Iterator[None]:
    """No garbage collection while TensorFlow and Keras are imported, and what they made kept
    out of later collections.

    The import makes some 700,000 objects, nearly all for good (modules, functions,
    classes): Python's collector, triggered by the count of new objects, walked them again
    and again, 0.4 s of the import's 2 s. Frozen afterwards (`gc.freeze`), they are not walked
    by the collections of the rest of the run either.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


class _native_stderr_filtered:
    """Hold back what is written to descriptor 2; on exit pass on every line but the noise."""

    def __enter__(self) -> None:
        sys.stderr.flush()
        self._held = tempfile.TemporaryFile()
        try:
            self._saved = os.dup(2)
        except OSError:  # no descriptor 2 (some service managers): nothing to filter
            self._saved = None
            return
        os.dup2(self._held.fileno(), 2)

    def __exit__(self, *exc_info) -> None:
        sys.stderr.flush()
        if self._saved is not None:
            os.dup2(self._saved, 2)
            os.close(self._saved)
        self._held.seek(0)
        kept = [
            line
            for line in self._held.read().decode(errors="replace").splitlines(keepends=True)
            if not NOISE.search(line)
        ]
        self._held.close()
        if kept:
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
