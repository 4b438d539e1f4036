"""Hypothesis fuzz of shapes and lengths (B=0, T=0, E=1 included): the custom
ops never crash and agree with their composite twins, forward and backward."""

from __future__ import annotations

import deepctr_ops
import numpy as np
import tensorflow as tf
from deepctr_ops.ops import masked_sequence_pool, ragged_sequence_pool, sequence_pool
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _both(fn, x, seed):
    upstream_rng = np.random.default_rng(seed)
    results = []
    for impl in ("op", "tf"):
        deepctr_ops.set_implementation(impl)
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            out = fn(xt)
            upstream = tf.constant(upstream_rng.standard_normal(out.shape.as_list()), out.dtype)
            loss = tf.reduce_sum(tf.where(tf.math.is_finite(out), out, 0.0) * upstream)
        results.append((out.numpy(), tape.gradient(loss, xt).numpy()))
        upstream_rng = np.random.default_rng(seed)
    deepctr_ops.set_implementation("op")
    return results


def _assert_same(results):
    (out_op, grad_op), (out_tf, grad_tf) = results
    np.testing.assert_allclose(out_op, out_tf, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_op, grad_tf, rtol=1e-5, atol=1e-5)


dims = st.tuples(st.integers(0, 5), st.integers(0, 6), st.integers(1, 70))


@SETTINGS
@given(dims=dims, mode=st.sampled_from(["sum", "mean", "max"]), seed=st.integers(0, 2**16),
       length_dtype=st.sampled_from([np.int32, np.int64]))
@example(dims=(0, 0, 1), mode="max", seed=0, length_dtype=np.int32)
@example(dims=(0, 4, 1), mode="mean", seed=0, length_dtype=np.int64)
@example(dims=(3, 0, 1), mode="max", seed=1, length_dtype=np.int32)
@example(dims=(3, 0, 5), mode="mean", seed=1, length_dtype=np.int64)
@example(dims=(1, 1, 1), mode="max", seed=2, length_dtype=np.int32)
def test_lengths(dims, mode, seed, length_dtype):
    b, t, e = dims
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, t, e)).astype(np.float32)
    lengths = rng.integers(-2, t + 3, size=(b, 1)).astype(length_dtype)
    _assert_same(_both(lambda v: sequence_pool(v, lengths, mode), x, seed))


@SETTINGS
@given(dims=dims, mode=st.sampled_from(["sum", "mean", "max"]), seed=st.integers(0, 2**16))
@example(dims=(0, 0, 1), mode="max", seed=0)
@example(dims=(2, 0, 1), mode="mean", seed=0)
@example(dims=(2, 3, 1), mode="max", seed=5)
def test_mask(dims, mode, seed):
    b, t, e = dims
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, t, e)).astype(np.float32)
    mask = rng.random((b, t)) < rng.random()
    _assert_same(_both(lambda v: masked_sequence_pool(v, mask, mode), x, seed))


@SETTINGS
@given(row_lengths=st.lists(st.integers(0, 5), min_size=0, max_size=6),
       e=st.integers(1, 70), mode=st.sampled_from(["sum", "mean", "max"]),
       seed=st.integers(0, 2**16))
@example(row_lengths=[], e=1, mode="max", seed=0)
@example(row_lengths=[0, 0], e=1, mode="mean", seed=0)
def test_ragged(row_lengths, e, mode, seed):
    rng = np.random.default_rng(seed)
    splits = np.concatenate([[0], np.cumsum(row_lengths)]).astype(np.int64)
    x = rng.standard_normal((int(splits[-1]), e)).astype(np.float32)
    _assert_same(_both(lambda v: ragged_sequence_pool(v, splits, mode), x, seed))
