"""float16 / bfloat16 accumulate in float32: they equal the float32 result
rounded once, for the op and its twin; float64 stays float64."""

from __future__ import annotations

import deepctr_ops
import numpy as np
import pytest
import tensorflow as tf
from deepctr_ops.ops import masked_sequence_pool, ragged_sequence_pool, sequence_pool

MODES = ["sum", "mean", "max"]


def _pool_and_grad(fn, x, upstream):
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = fn(x)
        loss = tf.reduce_sum(out * tf.cast(upstream, out.dtype))
    return out, tape.gradient(loss, x)


@pytest.mark.parametrize("impl", ["op", "tf"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
@pytest.mark.parametrize("layout", ["lengths", "mask", "ragged"])
def test_half_types_round_the_float32_result(rng, impl, mode, dtype, layout):
    b, t, e = 6, 5, 8
    # Values exactly representable in both 16-bit types.
    x32 = tf.constant(np.round(rng.standard_normal((b, t, e)) * 8) / 8, tf.float32)
    upstream = np.round(rng.standard_normal((b, 1, e)) * 4) / 4
    lengths = np.array([0, 1, 5, 3, 7, 2])
    if layout == "lengths":
        def fn(x):
            return sequence_pool(x, lengths, mode)
    elif layout == "mask":
        mask = rng.random((b, t)) < 0.6
        mask[0] = False

        def fn(x):
            return masked_sequence_pool(x, mask, mode)
    else:
        x32 = tf.reshape(x32, [b * t, e])[: lengths.clip(0, t).sum()]
        splits = np.concatenate([[0], np.cumsum(lengths.clip(0, t))])

        def fn(x):
            return ragged_sequence_pool(x, splits, mode)

    deepctr_ops.set_implementation(impl)
    ref_out, ref_grad = _pool_and_grad(fn, x32, upstream)
    out, grad = _pool_and_grad(fn, tf.cast(x32, dtype), upstream)
    assert out.dtype == dtype and grad.dtype == dtype
    np.testing.assert_array_equal(out.numpy(), tf.cast(ref_out, dtype).numpy())
    # The gradient is the float32 gradient rounded once (upstream is exact).
    np.testing.assert_array_equal(grad.numpy(), tf.cast(ref_grad, dtype).numpy())


def test_float16_empty_max_row_overflows_to_minus_infinity():
    # -1e9 is not a float16: it rounds to -inf, as tf.cast(-1e9, float16) does.
    out = sequence_pool(tf.zeros([1, 3, 2], tf.float16), [0], "max")
    assert np.all(np.isneginf(out.numpy()))
    out_bf16 = sequence_pool(tf.zeros([1, 3, 2], tf.bfloat16), [0], "max")
    np.testing.assert_array_equal(tf.cast(out_bf16, tf.float32).numpy(),
                                  tf.cast(tf.cast(-1e9, tf.bfloat16), tf.float32).numpy() *
                                  np.ones((1, 1, 2)))


@pytest.mark.parametrize("mode", MODES)
def test_float64_keeps_precision(rng, mode):
    x = rng.standard_normal((3, 4, 2)) * 1e-9 + 1.0
    out = sequence_pool(x, [4, 2, 3], mode).numpy()
    valid = np.arange(4)[None, :] < np.array([4, 2, 3])[:, None]
    if mode == "max":
        expected = np.where(valid[..., None], x, -np.inf).max(axis=1, keepdims=True)
    else:
        expected = (x * valid[..., None]).sum(axis=1, keepdims=True)
        if mode == "mean":
            expected = expected / (np.array([4, 2, 3])[:, None, None] + 1e-8)
    np.testing.assert_allclose(out, expected, rtol=1e-15)
