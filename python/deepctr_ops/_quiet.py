"""Keeps the CLI's output to its own progress and results (unless --verbose).

TensorFlow's C++ libraries log INFO lines (oneDNN, CUDA probing, absl's
"before InitializeLog" notice) while they load and when the devices are first
listed, before any Python log level applies; AutoGraph and Keras warn through
Python logging and `warnings`; DeepCTR starts a thread at import that asks
PyPI for a newer version and prints what it finds (or that it could not).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
import warnings


@contextlib.contextmanager
def native_stderr_silenced():
    """Sends file descriptor 2 to a temporary file for the block; replays it if
    the block raises, so that a real failure still shows its log."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def cli_quiet_requested() -> bool:
    """True in a `deepctr-ops ...` / `python -m deepctr_ops ...` process run
    without --verbose. The package's __init__ asks before it imports
    TensorFlow: the console script imports the package (and so TensorFlow)
    before the CLI's main() could silence anything."""
    argv = list(getattr(sys, "orig_argv", sys.argv))
    if "--verbose" in argv:
        return False
    script = os.path.basename(sys.argv[0]) if sys.argv else ""
    return script == "deepctr-ops" or (
        "-m" in argv[:-1] and argv[argv.index("-m") + 1] == "deepctr_ops")


def _is_deepctr_version_check(thread: threading.Thread) -> bool:
    target = getattr(thread, "_target", None)
    return (getattr(target, "__qualname__", "") == "check_version.<locals>.check"
            and getattr(target, "__module__", "").startswith("deepctr"))


def import_deepctr_without_version_check() -> None:
    """Imports DeepCTR without its PyPI version-check thread."""
    if "deepctr" in sys.modules:
        return
    start = threading.Thread.start

    def start_unless_version_check(thread: threading.Thread) -> None:
        if not _is_deepctr_version_check(thread):
            start(thread)

    threading.Thread.start = start_unless_version_check
    try:
        import deepctr  # noqa: F401
    except ImportError:
        pass  # DeepCTR is an optional extra; the bench reports its rows as n/a.
    finally:
        threading.Thread.start = start


def quiet_tensorflow_import() -> None:
    """Imports TensorFlow and loads the op library at the C++ log level ERROR+."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    from . import _loader

    _loader.load()
    tf.config.list_physical_devices()  # Device probing logs here, once.


def quiet_startup() -> None:
    """The CLI's main(): imports DeepCTR without its noise and turns the
    Python-side warnings down. (TensorFlow and the op library were already
    imported quietly by the package's __init__, see cli_quiet_requested.)"""
    with native_stderr_silenced():
        import_deepctr_without_version_check()
    import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)
    tf.autograph.set_verbosity(0)
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:
        pass
    warnings.filterwarnings("ignore")
