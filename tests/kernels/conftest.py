"""Fixtures of the kernel-module tests.

These tests need only numpy and the pybind11 module, so that
tools/gpu_check.sh can run them on a GPU machine without TensorFlow: there it
points DEEPCTR_OPS_KERNELS_DIR at the standalone build and runs pytest with
--confcutdir=tests/kernels (so tests/conftest.py, which imports TensorFlow, is
not loaded). Elsewhere the module comes from the installed package.
"""

from __future__ import annotations

import importlib
import os
import sys

import numpy as np
import pytest


def _load_kernels():
    directory = os.environ.get("DEEPCTR_OPS_KERNELS_DIR")
    if directory:
        sys.path.insert(0, directory)
        return importlib.import_module("_kernels")
    return importlib.import_module("deepctr_ops._kernels")


@pytest.fixture(scope="session")
def kernels():
    return _load_kernels()


@pytest.fixture(scope="session")
def gpu_kernels(kernels):
    if not kernels.cuda_built:
        pytest.skip("the kernel module was built without CUDA")
    if kernels.gpu_count() == 0:
        pytest.skip("no CUDA device")
    return kernels


@pytest.fixture
def rng():
    return np.random.default_rng(4321)
