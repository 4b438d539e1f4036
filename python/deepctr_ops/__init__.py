"""deepctr-ops: DeepCTR's sequence layers on fast TensorFlow custom ops.

Importing the package loads the op library once (or raises an ImportError
that says which TensorFlow/wheel to install) and registers the C++ gradient
ops, so a SavedModel using the ops can be run and fine-tuned after
``import deepctr_ops`` (or loaded with ``deepctr_ops.load_saved_model``).
"""

from __future__ import annotations

from . import _quiet

if _quiet.cli_quiet_requested():  # The CLI: TensorFlow's start-up log stays out of its output.
    with _quiet.native_stderr_silenced():
        _quiet.quiet_tensorflow_import()

from . import _loader  # noqa: E402
from ._implementation import get_implementation, implementation, set_implementation  # noqa: E402

_loader.load()

from . import ops  # noqa: E402  (registers gradients)
from .layers.sequence import custom_objects  # noqa: E402
from .patch import patch_deepctr, unpatch_deepctr  # noqa: E402
from .saved_model import load_saved_model  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "custom_objects",
    "get_implementation",
    "implementation",
    "load_saved_model",
    "ops",
    "patch_deepctr",
    "set_implementation",
    "unpatch_deepctr",
]
