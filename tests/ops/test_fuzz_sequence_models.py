"""Hypothesis fuzz of the DIN attention-pooling and dynamic-GRU ops against their
composite twins, outputs and gradients: shapes with B=0, T=0 and E=1, lengths
outside [0, T] (int32, int64 and float), float32 and float64, and NaN, ±Inf and
huge values in the padded steps, which must never reach a result (rows with no
valid step under DIN normalisation read their keys by DeepCTR's rule, so those
rows keep finite padding). NaN in valid steps is pinned separately
(test_attention_pool.py, test_dynamic_gru_op.py). 2 x 150 examples.
"""

from __future__ import annotations

import deepctr_ops
import numpy as np
import tensorflow as tf
from deepctr_ops.ops import attention_pool, dynamic_gru
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
SPECIALS = np.array([np.nan, np.inf, -np.inf, 1e30])


def _lengths(rng, b, t, kind):
    raw = rng.integers(-2, t + 3, size=(b, 1))
    return {"int32": raw.astype(np.int32), "int64": raw.astype(np.int64),
            "float": (raw + 0.5).astype(np.float32)}[kind]


def _poison_padding(rng, x, valid, keep_rows=None):
    """Specials in the padded steps (not in rows listed in keep_rows)."""
    x = x.copy()
    padded = ~valid
    if keep_rows is not None:
        padded[keep_rows] = False
    cells = np.broadcast_to(padded[:, :, None], x.shape)
    x[cells] = rng.choice(SPECIALS, size=int(cells.sum()))
    return x


def _op_and_twin(fn, inputs, seed):
    results = []
    for impl in ("op", "tf"):
        deepctr_ops.set_implementation(impl)
        try:
            tensors = [tf.constant(v) for v in inputs]
            with tf.GradientTape() as tape:
                tape.watch(tensors)
                outs = fn(*tensors)
                outs = outs if isinstance(outs, tuple) else (outs,)
                rng = np.random.default_rng(seed)
                loss = tf.add_n([tf.reduce_sum(o * rng.standard_normal(o.shape.as_list()))
                                 for o in outs])
            grads = tape.gradient(loss, tensors)
        finally:
            deepctr_ops.set_implementation("op")
        results.append([o.numpy() for o in outs] + [
            np.zeros(t.shape) if g is None else tf.convert_to_tensor(g).numpy()
            for g, t in zip(grads, tensors)])
    return results


def _assert_same(results, dtype):
    tol = 2e-4 if dtype == np.float32 else 1e-9
    for ours, twin in zip(*results):
        assert np.isfinite(ours).all(), "a special value in padding reached a result"
        np.testing.assert_allclose(ours, twin, rtol=tol, atol=tol * max(1.0, np.abs(twin).max(
            initial=0.0)))


@SETTINGS
@given(b=st.integers(0, 4), t=st.integers(0, 6), e=st.integers(1, 5),
       units=st.sampled_from([(), (5,), (6, 3)]), normalize=st.booleans(),
       return_score=st.booleans(), length_kind=st.sampled_from(["int32", "int64", "float"]),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_attention_pool_matches_twin(b, t, e, units, normalize, return_score, length_kind,
                                     dtype, seed):
    rng = np.random.default_rng(seed)
    lengths = _lengths(rng, b, t, length_kind)
    valid = np.arange(t)[None, :] < np.clip(lengths.astype(np.int64), 0, t)
    query = rng.standard_normal((b, 1, e)).astype(dtype)
    # Rows with no valid step under normalisation pool all T keys (DeepCTR).
    empty = np.flatnonzero(~valid.any(axis=1)) if normalize else None
    keys = _poison_padding(rng, rng.standard_normal((b, t, e)), valid, empty).astype(dtype)
    dims = [4 * e, *units, 1]
    kernels = [(rng.standard_normal((dims[i], dims[i + 1])) * 0.5).astype(dtype)
               for i in range(len(dims) - 1)]
    biases = [(rng.standard_normal(dims[i + 1]) * 0.1).astype(dtype)
              for i in range(len(dims) - 1)]
    n = len(kernels)

    def fn(q, k, *weights):
        return attention_pool(q, k, list(weights[:n]), list(weights[n:]), lengths=lengths,
                              weight_normalization=normalize, return_score=return_score)

    _assert_same(_op_and_twin(fn, [query, keys, *kernels, *biases], seed), dtype)


@SETTINGS
@given(b=st.integers(0, 4), t=st.integers(0, 6), e=st.integers(1, 5), u=st.integers(1, 5),
       cell=st.sampled_from(["GRU", "AIGRU", "AGRU", "AUGRU"]), reverse=st.booleans(),
       length_kind=st.sampled_from(["int32", "int64", "float"]),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_dynamic_gru_matches_twin(b, t, e, u, cell, reverse, length_kind, dtype, seed):
    rng = np.random.default_rng(seed)
    lengths = _lengths(rng, b, t, length_kind)
    valid = np.arange(t)[None, :] < np.clip(lengths.astype(np.int64), 0, t)
    x = _poison_padding(rng, rng.standard_normal((b, t, e)), valid).astype(dtype)
    weights = [(rng.standard_normal(s) * 0.5).astype(dtype)
               for s in ((e + u, 2 * u), (2 * u,), (e + u, u), (u,))]
    inputs = [x, *weights]
    if cell in ("AGRU", "AUGRU"):
        inputs.append(_poison_padding(rng, rng.random((b, t, 1)), valid).astype(dtype))

    def fn(x, wg, bg, wc, bc, *att):
        return dynamic_gru(x, lengths, wg, bg, wc, bc, att_scores=att[0] if att else None,
                           cell=cell, reverse=reverse)

    _assert_same(_op_and_twin(fn, inputs, seed), dtype)
