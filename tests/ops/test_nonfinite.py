"""NaN and Inf through the TF ops, with the numbers they must give (the fuzz in
test_fuzz.py checks op == twin on random mixes; these pin the rules):

* a NaN in a valid step makes max NaN (tf.reduce_max), and its gradient NaN at
  every valid step of that column (TF's 0 / 0 * grad), 0 at padded steps;
* NaN or ±Inf in padded steps never reaches a row with a valid step, for sum,
  mean and max (DeepCTR's x * mask would turn a padded Inf into NaN);
* ±Inf in valid steps: inf + -inf is NaN for sum and mean, max takes +inf;
* attention: a NaN or +inf eligible logit makes its row NaN, an ineligible one
  is never read.
"""

from __future__ import annotations

import deepctr_ops
import numpy as np
import pytest
import tensorflow as tf
from deepctr_ops.ops import masked_sequence_pool, ragged_sequence_pool, sequence_pool
from deepctr_ops.ops.attention import attention_softmax

LENGTHS = np.array([3, 1, 0, 4])
VALID = np.arange(4)[None, :] < LENGTHS[:, None]
DTYPES = [tf.float32, tf.float64, tf.float16, tf.bfloat16]


def _pool(layout, values, mode):
    """Pools dense [4, 4, E] values laid out as `layout` (ragged drops the padding)."""
    if layout == "lengths":
        return sequence_pool(values, LENGTHS, mode)
    if layout == "mask":
        return masked_sequence_pool(values, VALID, mode)
    return ragged_sequence_pool(tf.boolean_mask(values, VALID),
                                np.concatenate([[0], np.cumsum(LENGTHS)]), mode)


def _value_and_grad(layout, x, mode, dtype, upstream=None):
    xt = tf.constant(x, dtype)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        out = _pool(layout, xt, mode)
    grad = tape.gradient(out, xt, output_gradients=upstream)
    return out.numpy().astype(np.float64), grad.numpy().astype(np.float64)


def _base():
    return np.arange(4 * 4 * 3, dtype=np.float64).reshape(4, 4, 3) % 7 - 3.0


@pytest.mark.parametrize("impl", ["op", "tf"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["lengths", "mask", "ragged"])
@pytest.mark.parametrize("step", [0, 1, 2])
def test_max_nan_in_a_valid_step_is_nan(impl, dtype, layout, step):
    x = _base()
    x[0, step, 1] = np.nan  # Row 0 has 3 valid steps: first, middle or last.
    deepctr_ops.set_implementation(impl)
    try:
        out, grad = _value_and_grad(layout, x, "max", dtype)
        clean, _ = _value_and_grad(layout, _base(), "max", dtype)
    finally:
        deepctr_ops.set_implementation("op")
    expected = clean.copy()
    expected[0, 0, 1] = np.nan
    np.testing.assert_array_equal(out, expected)
    nan_grad = np.zeros((4, 4, 3), bool)
    nan_grad[0, :3, 1] = True  # Every valid step of the column; its padded step gets 0.
    np.testing.assert_array_equal(np.isnan(grad), nan_grad)
    assert grad[0, 3, 1] == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["lengths", "mask"])
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
def test_padding_never_leaks(dtype, layout, mode, special):
    dirty = _base()
    padded = ~VALID
    padded[2] = False  # Row 2 has no valid step: max reads its padding (DeepCTR's -1e9 rule).
    dirty[padded] = special
    out, grad = _value_and_grad(layout, dirty, mode, dtype)
    clean, clean_grad = _value_and_grad(layout, _base(), mode, dtype)
    np.testing.assert_array_equal(out, clean)
    np.testing.assert_array_equal(grad, clean_grad)
    assert np.isfinite(out[VALID.any(axis=1)]).all()  # (float16 cannot hold -1e9: -inf.)


@pytest.mark.parametrize("impl", ["op", "tf"])
@pytest.mark.parametrize("layout", ["lengths", "mask", "ragged"])
def test_infinities_in_valid_steps(impl, layout):
    x = _base()
    x[0, 0, 0], x[0, 1, 0] = np.inf, -np.inf  # Row 0 column 0: inf + -inf.
    x[3, 2, 1] = np.inf                        # Row 3 column 1: +inf.
    x[1, 0, 2] = -np.inf                       # Row 1 (one step) column 2: -inf only.
    deepctr_ops.set_implementation(impl)
    try:
        results = {mode: _value_and_grad(layout, x, mode, tf.float32)
                   for mode in ("sum", "mean", "max")}
    finally:
        deepctr_ops.set_implementation("op")
    assert np.isnan(results["sum"][0][0, 0, 0]) and np.isnan(results["mean"][0][0, 0, 0])
    assert results["sum"][0][3, 0, 1] == np.inf and results["mean"][0][3, 0, 1] == np.inf
    assert results["max"][0][0, 0, 0] == np.inf and results["max"][0][3, 0, 1] == np.inf
    assert results["max"][0][1, 0, 2] == -np.inf
    # The unique +inf gets the whole gradient; a valid -inf that is the only
    # step is the max (padding does not tie with it).
    max_grad = results["max"][1]  # Dense [4,4,3] also for ragged (boolean_mask is taped).
    assert max_grad[0, 0, 0] == 1 and max_grad[0, 1, 0] == 0 and max_grad[1, 0, 2] == 1
    assert (max_grad[1, 1:, 2] == 0).all() and max_grad[3, 2, 1] == 1


@pytest.mark.parametrize("impl", ["op", "tf"])
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("special", [np.nan, np.inf])
def test_attention_nonfinite_eligible_logit_makes_its_row_nan(impl, dtype, special):
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((2 * 2, 3, 19))
    key_valid = np.ones((2, 19), bool)
    key_valid[1, 11:] = False
    scores[2, 2, 13] = special       # Head 1 of sample 0, eligible: row NaN.
    scores[3, 0, 12] = special       # Head 1 of sample 1, key 12 is padding: never read.
    deepctr_ops.set_implementation(impl)
    try:
        probs = attention_softmax(tf.constant(scores, dtype), key_valid, 2.0, heads=2).numpy()
    finally:
        deepctr_ops.set_implementation("op")
    nan_rows = np.isnan(probs).any(axis=-1)
    expected = np.zeros_like(nan_rows)
    expected[2, 2] = True
    np.testing.assert_array_equal(nan_rows, expected)
    assert np.isnan(probs[2, 2]).all()
    np.testing.assert_allclose(probs[~nan_rows].sum(axis=-1), 1.0, rtol=1e-5)
