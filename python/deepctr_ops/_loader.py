"""Finds and loads the op library `_deepctr_ops.so`, once.

The library is only ever loaded from this package's own directories: loading a
second copy of the same op names (say, a build-tree copy beside an installed
one) makes TensorFlow fail in confusing ways.
"""

from __future__ import annotations

import os
import threading
from types import ModuleType

import tensorflow as tf

LIBRARY_NAME = "_deepctr_ops.so"

_lock = threading.Lock()
_library: ModuleType | None = None
_library_path: str | None = None


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _package_dirs() -> list[str]:
    # An editable install spreads the package over the source tree and the
    # install directory; both belong to this package.
    from . import __path__ as package_path

    return list(package_path)


def _build_tf_version() -> str:
    try:
        from . import _build_info
    except ImportError as err:
        raise ImportError(
            "deepctr_ops is not built: its op library and _build_info.py are missing. "
            "Install it with `pip install .` (or `pip install --no-build-isolation -e .` "
            "for development) from the source tree."
        ) from err
    return _build_info.TF_VERSION


def _mismatch_message(built: str, running: str) -> str:
    return (
        f"deepctr_ops was built for TensorFlow {built} but TensorFlow {running} is "
        f"running. TensorFlow's C++ ABI changes between minor versions, so install "
        f"the deepctr-ops wheel built for TensorFlow {_minor(running)} (or reinstall "
        f"deepctr-ops from source in this environment), or install "
        f"`tensorflow=={_minor(built)}.*`."
    )


def library_path() -> str:
    """Path of the op library inside the package; ImportError if absent."""
    for directory in _package_dirs():
        candidate = os.path.join(directory, LIBRARY_NAME)
        if os.path.isfile(candidate):
            return candidate
    raise ImportError(
        f"{LIBRARY_NAME} is missing from the deepctr_ops package "
        f"({', '.join(_package_dirs())}). Build it with `pip install .` from the "
        f"source tree (nvcc on the PATH adds the CUDA kernels)."
    )


def load() -> ModuleType:
    """Loads the op library (once) and returns its generated op wrappers."""
    global _library, _library_path
    with _lock:
        if _library is not None:
            return _library
        built = _build_tf_version()
        running = tf.__version__
        if _minor(built) != _minor(running):
            raise ImportError(_mismatch_message(built, running))
        path = library_path()
        try:
            library = tf.load_op_library(path)
        except (tf.errors.NotFoundError, OSError) as err:
            # An ABI mismatch surfaces as an undefined symbol; say what to do.
            raise ImportError(
                f"Could not load {path}: {err}\n" + _mismatch_message(built, running)
            ) from err
        _library, _library_path = library, path
        return library


def loaded_path() -> str | None:
    """The path the library was loaded from, or None before `load()`."""
    return _library_path
