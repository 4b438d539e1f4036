"""The max forward's argmax output (where each max is) and the max backward
that uses it: codes through the raw ops, and the gradient of ties."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from deepctr.layers.sequence import SequencePoolingLayer as DeepCTRPooling
from deepctr_ops import _loader
from deepctr_ops.ops import sequence_pool

gen = _loader.load()
TIED, NO_STEP = -1, -2


def test_dense_argmax_codes():
    x = np.zeros((4, 3, 3), np.float32)
    x[0, :, 0] = [1, 5, 2]    # Unique max at step 1.
    x[0, :, 1] = [7, 7, 0]    # Tied between the two valid steps.
    x[0, :, 2] = [0, 0, 9]    # Step 2 is padding (length 2): max 0 tied at 0 and 1.
    x[1, :, :] = [[3], [1], [9]]  # Length 1: only step 0 competes.
    x[2, :, 0] = [1, 2, 3]    # Length 0: shifted steps; 1e9 swallows them, all tie.
    x[2, :, 1] = [1e10, 0, 0]  # A padded value larger than the shift stays unique.
    x[3] = -np.inf            # Length 3, every step -inf: all tie.
    out = gen.DeepCTR_SequencePool(values=x, lengths=np.array([2, 1, 0, 3], np.int32), mode="max")
    np.testing.assert_array_equal(out.argmax.numpy()[:, 0, :], [
        [1, TIED, TIED],
        [0, 0, 0],
        [TIED, 0, TIED],
        [TIED, TIED, TIED],
    ])
    assert out.argmax.dtype == tf.int32


def test_masked_argmax_is_relative_to_the_row_start():
    x = np.array([[[4.0], [9.0], [1.0], [9.5]]], np.float32)
    mask = np.array([[True, True, True, False]])
    out = gen.DeepCTR_MaskedSequencePool(values=x, mask=mask, mode="max")
    assert out.argmax.numpy().item() == 1


def test_no_step_at_all_is_coded_minus_two():
    empty_time = gen.DeepCTR_SequencePool(
        values=np.zeros((2, 0, 3), np.float32), lengths=np.array([0, 4], np.int32), mode="max")
    np.testing.assert_array_equal(empty_time.argmax.numpy(), np.full((2, 1, 3), NO_STEP))
    flat = np.array([[1.0, 2.0], [3.0, 0.0], [5.0, 5.0], [-1.0, 6.0]], np.float32)
    ragged = gen.DeepCTR_RaggedSequencePool(
        values=flat, row_splits=np.array([0, 2, 2, 4], np.int64), mode="max")
    np.testing.assert_array_equal(ragged.argmax.numpy()[:, 0, :], [
        [1, 0],            # Steps relative to row_splits[b].
        [NO_STEP, NO_STEP],
        [0, 1],
    ])


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_sum_and_mean_have_an_empty_argmax(mode):
    out = gen.DeepCTR_SequencePool(values=np.ones((2, 3, 4), np.float32),
                                   lengths=np.array([1, 2], np.int32), mode=mode)
    assert out.argmax.shape == (0,) and out.argmax.dtype == tf.int32


def test_tie_between_two_valid_steps_splits_the_gradient_evenly():
    x = np.array([[[2.0, 1.0], [0.5, 3.0], [2.0, 3.0], [9.0, 9.0]]], np.float32)
    lengths = np.array([[3]], np.int32)  # Step 3 is padding and never competes.
    upstream = np.array([[[0.8, -0.6]]], np.float32)
    values = tf.constant(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(values)
        ours = sequence_pool(values, lengths, "max")
        theirs = DeepCTRPooling("max")([values, lengths])
    ours_grad = tape.gradient(ours, values, upstream).numpy()
    theirs_grad = tape.gradient(theirs, values, upstream).numpy()
    expected = np.zeros_like(x)
    expected[0, [0, 2], 0] = 0.4
    expected[0, [1, 2], 1] = -0.3
    np.testing.assert_array_equal(ours_grad, expected)
    np.testing.assert_array_equal(ours_grad, theirs_grad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_forced_tie_codes_give_the_same_gradient(dtype):
    # -1 makes the backward re-read the values for that column; it must agree
    # with the fast path wherever the max is unique, and on real ties.
    rng = np.random.default_rng(5)
    x = rng.integers(-3, 4, size=(6, 7, 9)).astype(dtype)  # Small integers: many ties.
    lengths = np.array([0, 7, 3, 1, 9, -2], np.int32)
    upstream = rng.standard_normal((6, 1, 9)).astype(dtype)
    argmax = gen.DeepCTR_SequencePool(values=x, lengths=lengths, mode="max").argmax
    fast = gen.DeepCTR_SequencePoolGrad(values=x, lengths=lengths, argmax=argmax,
                                        grad=upstream, mode="max")
    slow = gen.DeepCTR_SequencePoolGrad(values=x, lengths=lengths,
                                        argmax=tf.fill(tf.shape(argmax), TIED),
                                        grad=upstream, mode="max")
    np.testing.assert_array_equal(fast.numpy(), slow.numpy())


def test_max_grad_checks_the_argmax_shape():
    x = np.ones((2, 3, 4), np.float32)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="argmax"):
        gen.DeepCTR_SequencePoolGrad(values=x, lengths=[1, 2], argmax=np.zeros([0], np.int32),
                                     grad=np.ones((2, 1, 4), np.float32), mode="max")
