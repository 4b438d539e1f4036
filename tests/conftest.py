"""Shared test setup.

The Keras flavour is fixed when TensorFlow is imported: run pytest once as is
(Keras 3) and once with TF_USE_LEGACY_KERAS=1 (tf_keras). tests/layers runs in
both (.ci/run does that); tests/ops does not depend on Keras.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import deepctr_ops  # noqa: E402,F401  (loads the op library, registers gradients)
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from deepctr_ops.compat import IS_KERAS_3  # noqa: E402


def pytest_report_header(config):
    return f"TensorFlow {tf.__version__}, {'Keras 3' if IS_KERAS_3 else 'tf_keras (legacy)'}"


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _default_implementation():
    """Every test starts on the custom ops and cannot leak a switch to the twins."""
    deepctr_ops.set_implementation("op")
    yield
    deepctr_ops.set_implementation("op")
