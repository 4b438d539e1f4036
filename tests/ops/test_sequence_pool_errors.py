"""Bad input: a clear error naming the argument, never a crash or a wrong number."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from deepctr_ops import _loader
from deepctr_ops.ops import masked_sequence_pool, ragged_sequence_pool, sequence_pool

gen = _loader.load()
X = np.ones((2, 3, 4), np.float32)
NO_ARGMAX = np.zeros([0], np.int32)  # sum and mean ignore the argmax input.


def test_unknown_mode_is_a_value_error():
    with pytest.raises(ValueError, match="mode"):
        sequence_pool(X, [1, 2], "median")


def test_raw_op_rejects_unknown_mode():
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="mode"):
        gen.DeepCTR_SequencePool(values=X, lengths=[1, 2], mode="median")


@pytest.mark.parametrize("lengths, match", [
    (np.array([1, 2, 3], np.int32), "lengths"),
    (np.array([[1, 2], [3, 4]], np.int32), "lengths"),
    (np.array([[[1]], [[2]]], np.int32), "lengths"),
])
def test_lengths_shape_is_checked(lengths, match):
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=match):
        gen.DeepCTR_SequencePool(values=X, lengths=lengths, mode="sum")


def test_values_rank_is_checked():
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="values"):
        gen.DeepCTR_SequencePool(values=np.ones((2, 3), np.float32), lengths=[1, 2], mode="sum")
    with pytest.raises(ValueError, match="values"):
        sequence_pool(np.ones((2, 3), np.float32), [1, 2])


def test_mask_shape_is_checked():
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="mask"):
        gen.DeepCTR_MaskedSequencePool(values=X, mask=np.ones((2, 4), bool), mode="sum")


def test_batch_mismatch_inside_a_graph_is_an_invalid_argument():
    @tf.function(input_signature=[tf.TensorSpec([None, None, 4]), tf.TensorSpec([None], tf.int32)])
    def f(x, lengths):
        return sequence_pool(x, lengths, "sum")

    with pytest.raises(tf.errors.InvalidArgumentError, match="lengths"):
        f(X, tf.constant([1, 2, 3]))


@pytest.mark.parametrize("splits, match", [
    ([1, 2, 3], r"row_splits\[0\]"),
    ([0, 3, 2], "non-decreasing"),
    ([0, 1, 2], r"row_splits\[-1\]"),
    ([0, 1, 9], r"row_splits\[-1\]"),
])
def test_ragged_row_splits_are_validated(splits, match):
    values = np.ones((3, 2), np.float32)
    for op in (gen.DeepCTR_RaggedSequencePool,):
        with pytest.raises(tf.errors.InvalidArgumentError, match=match):
            op(values=values, row_splits=np.array(splits, np.int64), mode="sum")
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        gen.DeepCTR_RaggedSequencePoolGrad(values=values, row_splits=np.array(splits, np.int64),
                                           argmax=NO_ARGMAX, grad=np.ones((2, 1, 2), np.float32),
                                           mode="sum")


def test_grad_shape_is_checked():
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="grad"):
        gen.DeepCTR_SequencePoolGrad(values=X, lengths=[1, 2], argmax=NO_ARGMAX,
                                     grad=np.ones((2, 1, 5), np.float32), mode="sum")


def test_unsupported_dtypes_are_value_errors():
    with pytest.raises(ValueError, match="values"):
        sequence_pool(np.ones((2, 3, 4), np.int32), [1, 2])
    with pytest.raises(ValueError, match="row_splits"):
        ragged_sequence_pool(np.ones((3, 2), np.float32), np.array([0, 1, 3], np.float32))
    with pytest.raises(ValueError, match="mask"):
        masked_sequence_pool(X, np.ones((2, 3, 1), bool))


@pytest.mark.parametrize("length", [-(2**31), -5, 4, 2**31 - 1])
def test_out_of_range_lengths_are_clamped_like_sequence_mask(length):
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    lengths = np.array([length, 2], np.int32)
    valid = tf.sequence_mask(lengths, 3).numpy()
    expected = (x * valid[:, :, None]).sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(sequence_pool(x, lengths, "sum").numpy(), expected)
    upstream = np.ones((2, 1, 4), np.float32)
    grad = gen.DeepCTR_SequencePoolGrad(values=x, lengths=lengths, argmax=NO_ARGMAX, grad=upstream,
                                        mode="sum")
    expected_grad = np.broadcast_to(valid[:, :, None], x.shape).astype(np.float32)
    np.testing.assert_array_equal(grad.numpy(), expected_grad)


def test_int64_lengths_beyond_int32_are_clamped():
    x = np.ones((1, 3, 1), np.float32)
    out = sequence_pool(x, np.array([2**40], np.int64), "sum").numpy()
    assert out[0, 0, 0] == 3.0
