"""Hypothesis fuzz of every op against its composite twin, forward and backward.

Shapes include B=0, T=0 and E=1; lengths run outside [0, T]; values mix NaN,
±Inf, -0, denormals and huge magnitudes into valid and padded steps, in
float32, float64 and bfloat16 (the attention op: float32 and float64, its
kernel dtypes); a quarter of the upstream gradients hold NaN too. Results are
compared NaN-aware: the same NaN and Inf positions, finite numbers within a
tolerance scaled by the magnitudes summed (sums of huge values cancel
differently in a different order). 5 x 250 examples (the fused embedding
pooling: NaN/Inf in table rows that valid and padded steps look up).
"""

from __future__ import annotations

import deepctr_ops
import ml_dtypes
import numpy as np
import tensorflow as tf
from deepctr_ops.ops import (
    embedding_sequence_pool,
    masked_sequence_pool,
    ragged_sequence_pool,
    sequence_pool,
)
from deepctr_ops.ops.attention import attention_softmax
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=250, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

DTYPES = {"float32": np.float32, "float64": np.float64, "bfloat16": ml_dtypes.bfloat16}
RTOL = {"float32": 2e-6, "float64": 1e-12, "bfloat16": 1e-2}
HUGE = {"float32": 1e30, "float64": 1e300, "bfloat16": 1e30}
DENORMAL = {"float32": 1e-45, "float64": 5e-324, "bfloat16": 1e-40}


def _values(rng, shape, dtype_name, special_rate):
    """Normal draws with a `special_rate` share of NaN, ±Inf, -0, denormals, ±huge."""
    x = rng.standard_normal(shape)
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, DENORMAL[dtype_name],
                         -DENORMAL[dtype_name], HUGE[dtype_name], -HUGE[dtype_name]])
    pick = rng.random(shape) < special_rate
    x[pick] = rng.choice(specials, size=int(pick.sum()))
    return x.astype(DTYPES[dtype_name])


def _both(fn, x, seed):
    """(output, input gradient) of the op and of the twin, for one upstream."""
    results = []
    for impl in ("op", "tf"):
        deepctr_ops.set_implementation(impl)
        try:
            xt = tf.constant(x)
            with tf.GradientTape() as tape:
                tape.watch(xt)
                out = fn(xt)
            upstream_rng = np.random.default_rng(seed)
            upstream = upstream_rng.standard_normal(out.shape.as_list())
            if seed % 4 == 0:  # A NaN upstream gradient must stay off unchosen steps.
                upstream[upstream_rng.random(upstream.shape) < 0.2] = np.nan
            grad = tape.gradient(out, xt, output_gradients=tf.constant(upstream, out.dtype))
        finally:
            deepctr_ops.set_implementation("op")
        results.append((_f64(out), _f64(grad)))
    return results


def _f64(t):
    return t.numpy().astype(np.float64)


def _assert_nan_aware(actual, expected, rtol, scale, what):
    assert actual.shape == expected.shape, what
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg=what + ": NaN")
    np.testing.assert_array_equal(np.isposinf(actual), np.isposinf(expected),
                                  err_msg=what + ": +Inf")
    np.testing.assert_array_equal(np.isneginf(actual), np.isneginf(expected),
                                  err_msg=what + ": -Inf")
    finite = np.isfinite(expected)
    np.testing.assert_allclose(actual[finite], expected[finite], rtol=rtol,
                               atol=rtol * scale + 1e-30, err_msg=what)


def _assert_same(results, x, dtype_name, steps):
    (out_op, grad_op), (out_tf, grad_tf) = results
    finite = np.abs(x.astype(np.float64))
    finite = finite[np.isfinite(finite)]
    scale = (finite.max() if finite.size else 0.0) * max(steps, 1)
    rtol = RTOL[dtype_name]
    _assert_nan_aware(out_op, out_tf, rtol, scale, "output")
    _assert_nan_aware(grad_op, grad_tf, rtol, 4.0, "gradient")


dims = st.tuples(st.integers(0, 5), st.integers(0, 6), st.integers(1, 40))
modes = st.sampled_from(["sum", "mean", "max"])
dtype_names = st.sampled_from(list(DTYPES))
special_rates = st.sampled_from([0.0, 0.1, 0.3, 1.0])


@SETTINGS
@given(dims=dims, mode=modes, seed=st.integers(0, 2**16), dtype_name=dtype_names,
       special_rate=special_rates, length_dtype=st.sampled_from([np.int32, np.int64]))
@example(dims=(0, 0, 1), mode="max", seed=0, dtype_name="float32", special_rate=0.0,
         length_dtype=np.int32)
@example(dims=(0, 4, 1), mode="mean", seed=0, dtype_name="float64", special_rate=1.0,
         length_dtype=np.int64)
@example(dims=(3, 0, 1), mode="max", seed=1, dtype_name="bfloat16", special_rate=0.3,
         length_dtype=np.int32)
@example(dims=(3, 0, 5), mode="mean", seed=1, dtype_name="float32", special_rate=0.1,
         length_dtype=np.int64)
@example(dims=(4, 6, 33), mode="max", seed=2, dtype_name="float32", special_rate=0.3,
         length_dtype=np.int32)
def test_lengths(dims, mode, seed, dtype_name, special_rate, length_dtype):
    b, t, e = dims
    rng = np.random.default_rng(seed)
    x = _values(rng, (b, t, e), dtype_name, special_rate)
    lengths = rng.integers(-2, t + 3, size=(b, 1)).astype(length_dtype)
    _assert_same(_both(lambda v: sequence_pool(v, lengths, mode), x, seed), x, dtype_name, t)


@SETTINGS
@given(dims=dims, mode=modes, seed=st.integers(0, 2**16), dtype_name=dtype_names,
       special_rate=special_rates)
@example(dims=(0, 0, 1), mode="max", seed=0, dtype_name="float32", special_rate=0.0)
@example(dims=(2, 0, 1), mode="mean", seed=0, dtype_name="bfloat16", special_rate=1.0)
@example(dims=(2, 3, 1), mode="max", seed=5, dtype_name="float64", special_rate=0.3)
def test_mask(dims, mode, seed, dtype_name, special_rate):
    b, t, e = dims
    rng = np.random.default_rng(seed)
    x = _values(rng, (b, t, e), dtype_name, special_rate)
    mask = rng.random((b, t)) < rng.random()
    _assert_same(_both(lambda v: masked_sequence_pool(v, mask, mode), x, seed), x, dtype_name,
                 t)


@SETTINGS
@given(row_lengths=st.lists(st.integers(0, 5), min_size=0, max_size=6),
       e=st.integers(1, 40), mode=modes, seed=st.integers(0, 2**16), dtype_name=dtype_names,
       special_rate=special_rates)
@example(row_lengths=[], e=1, mode="max", seed=0, dtype_name="float32", special_rate=0.0)
@example(row_lengths=[0, 0], e=1, mode="mean", seed=0, dtype_name="float64", special_rate=1.0)
@example(row_lengths=[3, 0, 2], e=9, mode="max", seed=3, dtype_name="bfloat16",
         special_rate=0.3)
def test_ragged(row_lengths, e, mode, seed, dtype_name, special_rate):
    rng = np.random.default_rng(seed)
    splits = np.concatenate([[0], np.cumsum(row_lengths)]).astype(np.int64)
    x = _values(rng, (int(splits[-1]), e), dtype_name, special_rate)
    _assert_same(_both(lambda v: ragged_sequence_pool(v, splits, mode), x, seed), x, dtype_name,
                 max(row_lengths, default=0))


@SETTINGS
@given(heads=st.integers(1, 3), batch=st.integers(0, 3), tq=st.integers(0, 5),
       tk=st.integers(0, 19), seed=st.integers(0, 2**16),
       dtype_name=st.sampled_from(["float32", "float64"]), special_rate=special_rates,
       divisor=st.sampled_from([1.0, 2.0, 0.125]), blinding=st.booleans())
@example(heads=1, batch=0, tq=0, tk=0, seed=0, dtype_name="float32", special_rate=0.0,
         divisor=1.0, blinding=False)
@example(heads=2, batch=2, tq=3, tk=17, seed=1, dtype_name="float32", special_rate=0.1,
         divisor=2.0, blinding=True)
def test_attention_softmax(heads, batch, tq, tk, seed, dtype_name, special_rate, divisor,
                           blinding):
    rng = np.random.default_rng(seed)
    x = _values(rng, (heads * batch, tq, tk), dtype_name, special_rate)
    key_valid = rng.random((batch, tk)) < rng.random()
    results = _both(lambda s: attention_softmax(s, key_valid, divisor, blinding, heads=heads),
                    x, seed)
    (out_op, grad_op), (out_tf, grad_tf) = results
    rtol = 2e-5 if dtype_name == "float32" else 1e-12
    _assert_nan_aware(out_op, out_tf, rtol, 1.0, "probs")
    _assert_nan_aware(grad_op, grad_tf, rtol, 4.0 / divisor, "gradient")


@SETTINGS
@given(dims=st.tuples(st.integers(0, 5), st.integers(0, 6), st.integers(1, 20)),
       vocab=st.integers(1, 12), mode=modes, seed=st.integers(0, 2**16),
       dtype_name=dtype_names, special_rate=special_rates,
       layout=st.sampled_from(["lengths", "mask", "ragged", "every step"]),
       mask_zero=st.booleans(), weighting=st.sampled_from([None, "raw", "normalized"]))
@example(dims=(0, 0, 1), vocab=1, mode="max", seed=0, dtype_name="float32", special_rate=0.0,
         layout="lengths", mask_zero=False, weighting=None)
@example(dims=(3, 4, 9), vocab=2, mode="max", seed=4, dtype_name="float32", special_rate=0.3,
         layout="every step", mask_zero=True, weighting="normalized")
@example(dims=(3, 2, 5), vocab=3, mode="mean", seed=5, dtype_name="bfloat16", special_rate=0.1,
         layout="ragged", mask_zero=True, weighting="raw")
def test_embedding_pool(dims, vocab, mode, seed, dtype_name, special_rate, layout, mask_zero,
                        weighting):
    """The fused embedding pooling against its twin (gather + pooling twin):
    specials sit in table rows (a small vocabulary makes ids repeat and hit
    them from valid and padded steps alike) and in the weights."""
    b, t, e = dims
    rng = np.random.default_rng(seed)
    table = _values(rng, (vocab, e), dtype_name, special_rate)
    ids = rng.integers(0, vocab, size=(b, t)).astype(np.int64)
    lengths = rng.integers(-2, t + 3, size=(b,)).astype(np.int32)
    kwargs = {"mode": mode, "mask_zero": mask_zero}
    if layout == "lengths":
        kwargs["lengths"] = lengths
    elif layout == "mask":
        kwargs["mask"] = rng.random((b, t)) < rng.random()
    weights = None
    if weighting is not None:
        weights = _values(rng, (b, t), dtype_name, special_rate / 4)
        kwargs["weight_normalization"] = weighting == "normalized"
    row_lengths = np.clip(lengths, 0, t)

    def arrange(x):
        if layout == "ragged":
            return tf.RaggedTensor.from_tensor(x, lengths=row_lengths)
        return x

    results = []
    for impl in ("op", "tf"):
        deepctr_ops.set_implementation(impl)
        try:
            table_t = tf.constant(table)
            weights_t = None if weights is None else tf.constant(weights)
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(table_t)
                if weights_t is not None:
                    tape.watch(weights_t)
                out = embedding_sequence_pool(
                    table_t, arrange(ids),
                    weights=None if weights_t is None else arrange(weights_t), **kwargs)
            upstream = tf.constant(np.random.default_rng(seed).standard_normal(
                out.shape.as_list()), out.dtype)
            grad = tf.convert_to_tensor(tape.gradient(out, table_t, output_gradients=upstream))
            grad_w = (None if weights_t is None else
                      tape.gradient(out, weights_t, output_gradients=upstream))
        finally:
            deepctr_ops.set_implementation("op")
        results.append((_f64(out), _f64(grad), None if grad_w is None else _f64(grad_w)))
    (out_op, grad_op, gw_op), (out_tf, grad_tf, gw_tf) = results
    finite = np.abs(table.astype(np.float64))
    finite = finite[np.isfinite(finite)]
    scale = (finite.max() if finite.size else 0.0) * max(t, 1)
    if weights is not None:
        w = np.abs(weights.astype(np.float64))
        w = w[np.isfinite(w)]
        scale *= min(max(w.max() if w.size else 0.0, 1.0), 1e30)
    scale = min(scale, 1e200)  # Huge float64 magnitudes: keep the tolerance finite.
    rtol = RTOL[dtype_name]
    _assert_nan_aware(out_op, out_tf, rtol, scale, "output")
    # Table gradients sum several steps' rows (a repeated id), so they carry
    # the weights' magnitudes.
    _assert_nan_aware(grad_op, grad_tf, rtol, 4.0 * max(t, 1) * max(scale, 1.0), "table gradient")
    if gw_op is not None:
        _assert_nan_aware(gw_op, gw_tf, rtol, 4.0 * e * max(scale, 1.0), "weights gradient")
