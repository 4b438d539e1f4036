"""The pooling ops against DeepCTR's SequencePoolingLayer (the oracle), their
composite twins and a float64 NumPy reference: outputs and input gradients."""

from __future__ import annotations

import deepctr_ops
import numpy as np
import pytest
import tensorflow as tf
from deepctr.layers.sequence import SequencePoolingLayer as DeepCTRPooling
from deepctr_ops.ops import masked_sequence_pool, ragged_sequence_pool, sequence_pool
from helpers import ragged_lengths, value_and_input_grads
from kernels.pool_reference import pool, valid_from_lengths

MODES = ["sum", "mean", "max"]
IMPLS = ["op", "tf"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("length_dtype", [np.int32, np.int64, np.float32])
def test_lengths_match_deepctr(rng, impl, mode, length_dtype):
    b, t, e = 16, 7, 5
    x = rng.standard_normal((b, t, e)).astype(np.float32)
    lengths = ragged_lengths(rng, b, t).astype(length_dtype)
    if length_dtype == np.float32:
        lengths[5:8, 0] = [2.7, 0.5, 6.2]  # Truncated for the mask, not for mean.
    deepctr_ops.set_implementation(impl)
    ours, (our_grad,) = value_and_input_grads(lambda xs: sequence_pool(xs[0], xs[1], mode),
                                              [x, lengths])
    theirs, (their_grad,) = value_and_input_grads(DeepCTRPooling(mode), [x, lengths])
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(our_grad, their_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mode", MODES)
def test_non_prefix_mask_matches_deepctr(rng, impl, mode):
    b, t, e = 12, 6, 4
    x = rng.standard_normal((b, t, e)).astype(np.float32)
    mask = rng.random((b, t)) < 0.5
    mask[0] = False
    mask[1] = True
    mask[2] = [False, True, False, False, True, False]
    deepctr_ops.set_implementation(impl)
    ours, (our_grad,) = value_and_input_grads(
        lambda xs: masked_sequence_pool(xs[0], xs[1], mode), [x, mask])
    deepctr_layer = DeepCTRPooling(mode, supports_masking=True)
    theirs, (their_grad,) = value_and_input_grads(
        lambda xs: deepctr_layer(xs[0], mask=xs[1]), [x, mask])
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(our_grad, their_grad, rtol=1e-5, atol=1e-6)


def test_empty_row_max_is_shifted_and_splits_gradient_evenly():
    t = 5
    x = np.zeros((1, t, 3), np.float32)
    x[0, :, 1] = 3.0  # |x| < 32: every shifted step rounds to exactly -1e9.
    out, (grad,) = value_and_input_grads(lambda xs: sequence_pool(xs[0], xs[1], "max"),
                                         [x, np.array([[0]], np.int32)], upstream_seed=3)
    np.testing.assert_array_equal(out, np.full((1, 1, 3), -1e9, np.float32))
    upstream = np.random.default_rng(3).standard_normal((1, 1, 3))
    np.testing.assert_allclose(grad, np.broadcast_to(upstream / t, (1, t, 3)), rtol=1e-6)


def test_large_padded_values_shift_like_deepctr_in_empty_rows():
    x = np.array([[[100.0], [5000.0], [-70.0]]], np.float32)
    ours = sequence_pool(x, np.array([0]), "max").numpy()
    theirs = DeepCTRPooling("max")([x, np.array([[0]])]).numpy()
    np.testing.assert_array_equal(ours, theirs)
    assert ours[0, 0, 0] == np.float32(5000.0) - np.float32(1e9)


@pytest.mark.parametrize("mode", MODES)
def test_mean_divides_by_raw_length(mode):
    x = np.ones((3, 4, 2), np.float32)
    lengths = np.array([[6], [-1], [2]], np.int64)
    out = sequence_pool(x, lengths, mode).numpy()[:, 0, 0]
    expected = {"sum": [4, 0, 2], "mean": [4 / 6, 0, 1], "max": [1, -1e9 + 1, 1]}[mode]
    np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("splits_dtype", [np.int32, np.int64])
def test_ragged_matches_padded_dense(rng, mode, splits_dtype):
    row_lengths = np.array([3, 0, 1, 5, 2, 0], splits_dtype)
    e = 4
    flat = rng.standard_normal((int(row_lengths.sum()), e)).astype(np.float32)
    rt = tf.RaggedTensor.from_row_lengths(flat, row_lengths)
    ours, (our_grad,) = value_and_input_grads(
        lambda xs: ragged_sequence_pool(xs[0], xs[1], mode), [flat, rt.row_splits.numpy()])
    dense = rt.to_tensor().numpy()
    theirs, (dense_grad,) = value_and_input_grads(
        DeepCTRPooling(mode), [dense, row_lengths.reshape(-1, 1)])
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    # The ragged gradient is the dense one at the rows' own steps.
    dense_grad_rows = tf.RaggedTensor.from_tensor(dense_grad, lengths=row_lengths).flat_values
    np.testing.assert_allclose(our_grad, dense_grad_rows.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mode", MODES)
def test_ragged_tensor_argument_and_twin(rng, impl, mode):
    rt = tf.ragged.constant([[[1.0, 2.0]], [], [[3.0, -1.0], [0.5, 4.0]]], ragged_rank=1)
    deepctr_ops.set_implementation(impl)
    out = ragged_sequence_pool(rt, mode=mode).numpy()
    expected = {
        "sum": [[1, 2], [0, 0], [3.5, 3]],
        "mean": [[1, 2], [0, 0], [1.75, 1.5]],
        "max": [[1, 2], [-1e9, -1e9], [3, 4]],
    }[mode]
    np.testing.assert_allclose(out[:, 0, :], expected, rtol=1e-6)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_reference(rng, mode, dtype):
    b, t, e = 9, 6, 3
    x = rng.standard_normal((b, t, e)).astype(dtype)
    lengths = ragged_lengths(rng, b, t)
    valid = valid_from_lengths(lengths, t)
    expected, expected_grad = pool(x, valid, lengths.reshape(-1), mode)
    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        out = sequence_pool(x_t, lengths, mode)
    grad = tape.gradient(out, x_t)
    assert out.dtype == dtype and grad.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out.numpy(), expected, rtol=tol, atol=tol)
    np.testing.assert_allclose(grad.numpy(), expected_grad, rtol=tol, atol=tol)
