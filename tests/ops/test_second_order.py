"""Second-order gradients: every `…Grad` op has a registered gradient, so
gradient penalties and Hessian-vector products work through the custom ops.

* float64 `tf.test.compute_gradient` of a gradient (the grad op's own gradient
  checked numerically), and of the grad op with respect to its upstream input;
* GradientTape-in-GradientTape (a gradient penalty and a Hessian-vector
  product) against the composite twin, which TF differentiates by itself.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from deepctr_ops import _loader
from deepctr_ops.ops import masked_sequence_pool, ragged_sequence_pool, sequence_pool
from deepctr_ops.ops.attention import attention_softmax
from helpers import on_op_and_twin, penalty_and_hvp

gen = _loader.load()
MODES = ["sum", "mean", "max"]


def _pool_fns(rng, dense_empty_rows=True):
    """(name, fn(values) -> pooled, values) for the three layouts, empty rows included.

    Without dense_empty_rows the dense layouts' empty rows get one valid step:
    an empty dense row's max is max(x - 1e9), too coarse in float64 for the
    finite differences (see test_sequence_pool_gradients).
    """
    empty = 0 if dense_empty_rows else 1
    lengths = np.array([[2], [5], [empty], [7]], np.int64)
    mask = np.array([[1, 0, 1, 0, 1], [0, 0, 0, empty, 0], [1, 1, 1, 1, 1], [0, 1, 0, 0, 0]],
                    bool)
    splits = np.array([0, 2, 2, 6], np.int64)
    return [
        ("lengths", lambda v, mode: sequence_pool(v, lengths, mode), (4, 5, 3)),
        ("mask", lambda v, mode: masked_sequence_pool(v, mask, mode), (4, 5, 3)),
        ("ragged", lambda v, mode: ragged_sequence_pool(v, splits, mode), (6, 3)),
    ]


def _distinct(rng, shape):
    """Values whose maxima stay where they are under a 1e-6 perturbation."""
    return rng.permutation(np.prod(shape)).reshape(shape).astype(np.float64) / 7.0 - 1.0


def _max_error(fn, x, delta=1e-6):
    theoretical, numerical = tf.test.compute_gradient(fn, [tf.constant(x)], delta=delta)
    return max(np.abs(t - n).max() for t, n in zip(theoretical, numerical))


def _input_grad(pool, mode, weights):
    """x -> d sum(weights * pool(x)**2) / dx, whose Jacobian needs the grad op's gradient."""
    def grad_of(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(weights * pool(x, mode) ** 2)
        return tape.gradient(loss, x)
    return grad_of


@pytest.mark.parametrize("layout", ["lengths", "mask", "ragged"])
@pytest.mark.parametrize("mode", MODES)
def test_gradient_of_gradient_is_numerically_right(rng, layout, mode):
    fns = _pool_fns(rng, dense_empty_rows=mode != "max")
    name, pool, shape = next(p for p in fns if p[0] == layout)
    x = _distinct(rng, shape)
    out_shape = pool(tf.constant(x), mode).shape
    weights = tf.constant(rng.standard_normal(out_shape))
    assert _max_error(_input_grad(pool, mode, weights), x) < 1e-7


@pytest.mark.parametrize("op, rows_arg, rows, values_shape", [
    ("DeepCTR_SequencePoolGrad", "lengths", np.array([2, 5, 0, 7], np.int64), (4, 5, 3)),
    ("DeepCTR_MaskedSequencePoolGrad", "mask",
     np.array([[1, 0, 1, 0, 1], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1], [0, 1, 0, 0, 0]], bool),
     (4, 5, 3)),
    ("DeepCTR_RaggedSequencePoolGrad", "row_splits", np.array([0, 2, 2, 6], np.int64), (6, 3)),
])
@pytest.mark.parametrize("mode", MODES)
def test_grad_op_gradient_wrt_upstream(rng, op, rows_arg, rows, values_shape, mode):
    values = tf.constant(_distinct(rng, values_shape))
    forward = getattr(gen, op[: -len("Grad")])(values=values, mode=mode, **{rows_arg: rows})
    upstream = rng.standard_normal(forward.pooled.shape)

    def grad_op(g):
        return getattr(gen, op)(values=values, argmax=forward.argmax, grad=g, mode=mode,
                                **{rows_arg: rows})
    assert _max_error(grad_op, upstream) < 1e-9


@pytest.mark.parametrize("layout", ["lengths", "mask", "ragged"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nested_tapes_match_twin(rng, layout, mode, dtype):
    name, pool, shape = next(p for p in _pool_fns(rng) if p[0] == layout)
    x = _distinct(rng, shape).astype(dtype)
    # Ties too: small integers, so max splits its gradient in both.
    if mode == "max":
        x = np.round(x * 2).astype(dtype)
    out_shape = pool(tf.constant(x), mode).shape
    weights = tf.constant(rng.standard_normal(out_shape).astype(dtype))
    direction = tf.constant(rng.standard_normal(shape).astype(dtype))
    (op_penalty, op_hvp), (tf_penalty, tf_hvp) = on_op_and_twin(
        penalty_and_hvp, lambda v: pool(v, mode), x, weights, direction)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.abs(op_penalty).max() > 0 and np.abs(op_hvp).max() > 0
    np.testing.assert_allclose(op_penalty, tf_penalty, rtol=tol, atol=tol)
    np.testing.assert_allclose(op_hvp, tf_hvp, rtol=tol, atol=tol)


def test_max_nan_second_order_matches_twin(rng):
    x = _distinct(rng, (4, 5, 3))
    x[0, 1, 2] = np.nan
    lengths = np.array([2, 5, 0, 7])
    weights = tf.constant(np.ones((4, 1, 3)))
    direction = tf.constant(np.ones((4, 5, 3)))
    (op_penalty, op_hvp), (tf_penalty, tf_hvp) = on_op_and_twin(
        penalty_and_hvp, lambda v: sequence_pool(v, lengths, "max"), x, weights, direction)
    np.testing.assert_array_equal(np.isnan(op_hvp), np.isnan(tf_hvp))
    assert np.isnan(op_hvp[0, :2, 2]).all()
    np.testing.assert_allclose(op_penalty, tf_penalty, equal_nan=True)
    np.testing.assert_allclose(op_hvp, tf_hvp, equal_nan=True)


def _attention_case(rng, dtype=np.float64):
    scores = rng.standard_normal((2 * 3, 4, 5)).astype(dtype)
    key_valid = np.array([[1, 1, 0, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], bool)
    return scores, key_valid


@pytest.mark.parametrize("blinding", [False, True])
def test_attention_gradient_of_gradient_is_numerically_right(rng, blinding):
    scores, key_valid = _attention_case(rng)
    weights = tf.constant(rng.standard_normal(scores.shape))

    def grad_of(s):
        with tf.GradientTape() as tape:
            tape.watch(s)
            probs = attention_softmax(s, key_valid, 1.7, blinding, heads=2)
            loss = tf.reduce_sum(weights * probs ** 2)
        return tape.gradient(loss, s)
    assert _max_error(grad_of, scores) < 1e-7


def test_attention_grad_op_gradient_is_numerically_right(rng):
    scores, key_valid = _attention_case(rng)
    probs = attention_softmax(scores, key_valid, 1.7, True, heads=2)

    def grad_op(g, p):
        return gen.DeepCTR_AttentionSoftmaxGrad(grad=g, probs=p, key_valid=key_valid,
                                                divisor=1.7, blinding=True, heads=2)
    theoretical, numerical = tf.test.compute_gradient(
        grad_op, [tf.constant(rng.standard_normal(scores.shape)), probs], delta=1e-6)
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_attention_nested_tapes_match_twin(rng, dtype):
    scores, key_valid = _attention_case(rng, dtype)
    weights = tf.constant(rng.standard_normal(scores.shape).astype(dtype))
    direction = tf.constant(rng.standard_normal(scores.shape).astype(dtype))
    (op_penalty, op_hvp), (tf_penalty, tf_hvp) = on_op_and_twin(
        penalty_and_hvp, lambda s: attention_softmax(s, key_valid, 2.0, True, heads=2), scores,
        weights, direction)
    tol = 1e-4 if dtype == np.float32 else 1e-11
    assert np.abs(op_hvp).max() > 0
    np.testing.assert_allclose(op_penalty, tf_penalty, rtol=tol, atol=tol)
    np.testing.assert_allclose(op_hvp, tf_hvp, rtol=tol, atol=tol)
