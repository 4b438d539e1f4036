"""Float64 numerical gradient checks of every pooling op and mode.

Values are distinct random numbers, so max has no ties (its gradient is only
defined piecewise); empty rows are included for sum and mean.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from deepctr_ops.ops import masked_sequence_pool, ragged_sequence_pool, sequence_pool

MODES = ["sum", "mean", "max"]


def _max_error(fn, x, delta=1e-6):
    theoretical, numerical = tf.test.compute_gradient(fn, [tf.constant(x)], delta=delta)
    return max(np.abs(t - n).max() for t, n in zip(theoretical, numerical))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("length_dtype", [np.int32, np.int64])
def test_sequence_pool_gradient(rng, mode, length_dtype):
    x = rng.standard_normal((4, 5, 3))
    lengths = np.array([[2], [5], [7], [0 if mode != "max" else 1]], length_dtype)
    assert _max_error(lambda v: sequence_pool(v, lengths, mode), x) < 1e-8


@pytest.mark.parametrize("mode", MODES)
def test_masked_sequence_pool_gradient(rng, mode):
    x = rng.standard_normal((3, 6, 2))
    mask = np.array([[1, 0, 1, 0, 0, 1], [0, 0, 0, 0, 0, 1], [1, 1, 1, 1, 1, 1]], bool)
    assert _max_error(lambda v: masked_sequence_pool(v, mask, mode), x) < 1e-8


@pytest.mark.parametrize("mode", MODES)
def test_ragged_sequence_pool_gradient(rng, mode):
    splits = np.array([0, 2, 2 if mode != "max" else 3, 6], np.int64)
    x = rng.standard_normal((6, 3))
    assert _max_error(lambda v: ragged_sequence_pool(v, splits, mode), x) < 1e-8


def test_empty_row_max_gradient_is_numerically_right():
    # In float64 the shifted padding does not tie, so the max is unique. Near
    # -1e9 a double's spacing is ~1e-7: difference with a wider (still
    # argmax-preserving, max is piecewise linear) step.
    x = np.array([[[0.1, -3.0], [0.7, 2.0], [0.3, 0.0]]])
    assert _max_error(lambda v: sequence_pool(v, np.array([0]), "max"), x, delta=1e-2) < 1e-4
