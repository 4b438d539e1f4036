"""Shape functions: static shapes through graphs, errors at graph construction."""

from __future__ import annotations

import pytest
import tensorflow as tf
from deepctr_ops import _loader

gen = _loader.load()


def _graph_shape(fn, *specs):
    return tf.function(fn).get_concrete_function(*specs).structured_outputs.shape


@pytest.mark.parametrize("lengths_shape", [[None], [None, 1], [7], [7, 1]])
def test_dense_forward_shape(lengths_shape):
    shape = _graph_shape(
        lambda x, n: gen.DeepCTR_SequencePool(values=x, lengths=n, mode="sum").pooled,
        tf.TensorSpec([7, 5, 3]), tf.TensorSpec(lengths_shape, tf.int32))
    assert shape.as_list() == [7, 1, 3]


def test_batch_comes_from_lengths_when_values_do_not_know_it():
    shape = _graph_shape(
        lambda x, n: gen.DeepCTR_SequencePool(values=x, lengths=n, mode="sum").pooled,
        tf.TensorSpec([None, 5, 3]), tf.TensorSpec([4, 1], tf.int64))
    assert shape.as_list() == [4, 1, 3]


def test_mask_and_ragged_forward_shapes():
    masked = _graph_shape(
        lambda x, m: gen.DeepCTR_MaskedSequencePool(values=x, mask=m, mode="max").pooled,
        tf.TensorSpec([None, 5, 3]), tf.TensorSpec([None, 5], tf.bool))
    assert masked.as_list() == [None, 1, 3]
    ragged = _graph_shape(
        lambda v, s: gen.DeepCTR_RaggedSequencePool(values=v, row_splits=s, mode="mean").pooled,
        tf.TensorSpec([None, 3]), tf.TensorSpec([9], tf.int64))
    assert ragged.as_list() == [8, 1, 3]


def test_grad_shapes_follow_values():
    grad = _graph_shape(
        lambda x, n, g: gen.DeepCTR_SequencePoolGrad(
            values=x, lengths=n, argmax=tf.zeros([0], tf.int32), grad=g, mode="sum"),
        tf.TensorSpec([None, 5, 3]), tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([None, 1, 3]))
    assert grad.as_list() == [None, 5, 3]


def test_argmax_shape_is_pooled_for_max_and_empty_otherwise():
    def outputs(mode):
        fn = tf.function(lambda v, s: gen.DeepCTR_RaggedSequencePool(
            values=v, row_splits=s, mode=mode))
        return fn.get_concrete_function(tf.TensorSpec([None, 3]), tf.TensorSpec([9], tf.int64))

    out = outputs("max").structured_outputs
    assert out.argmax.shape.as_list() == [8, 1, 3] and out.argmax.dtype == tf.int32
    assert outputs("mean").structured_outputs.argmax.shape.as_list() == [0]


def test_max_grad_argmax_must_match_grad_statically():
    with pytest.raises(ValueError, match="argmax must have the shape of grad"):
        _graph_shape(
            lambda x, n, a, g: gen.DeepCTR_SequencePoolGrad(
                values=x, lengths=n, argmax=a, grad=g, mode="max"),
            tf.TensorSpec([None, 5, 3]), tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None, 1, 4], tf.int32), tf.TensorSpec([None, 1, 3]))


@pytest.mark.parametrize("fn, specs, message", [
    (lambda x, n: gen.DeepCTR_SequencePool(values=x, lengths=n, mode="sum").pooled,
     (tf.TensorSpec([2, 5]), tf.TensorSpec([2], tf.int32)),
     r"values must be \[batch, time, embedding\]"),
    (lambda x, n: gen.DeepCTR_SequencePool(values=x, lengths=n, mode="sum").pooled,
     (tf.TensorSpec([2, 5, 3]), tf.TensorSpec([2, 2], tf.int32)),
     r"lengths must have shape \[batch\] or \[batch, 1\]"),
    (lambda x, n: gen.DeepCTR_SequencePool(values=x, lengths=n, mode="sum").pooled,
     (tf.TensorSpec([2, 5, 3]), tf.TensorSpec([3], tf.int32)),
     "lengths must have the batch size of values"),
    (lambda x, m: gen.DeepCTR_MaskedSequencePool(values=x, mask=m, mode="sum").pooled,
     (tf.TensorSpec([2, 5, 3]), tf.TensorSpec([2, 4], tf.bool)),
     r"mask must be \[batch, time\] like values"),
    (lambda v, s: gen.DeepCTR_RaggedSequencePool(values=v, row_splits=s, mode="sum").pooled,
     (tf.TensorSpec([None, 3, 1]), tf.TensorSpec([4], tf.int64)),
     r"values must be the flat ragged values \[num_values, embedding\]"),
])
def test_inconsistent_static_shapes_fail_at_graph_construction(fn, specs, message):
    with pytest.raises(ValueError, match=message):
        _graph_shape(fn, *specs)


def _sum_grad(op, rows_arg):
    return lambda x, r, g: getattr(gen, op)(
        values=x, argmax=tf.zeros([0], tf.int32), grad=g, mode="sum", **{rows_arg: r})


@pytest.mark.parametrize("op, rows_arg, values, rows, grad, expected", [
    ("DeepCTR_SequencePoolGrad", "lengths", [None, 5, None], ([None], tf.int32), [4, 1, 3],
     [4, 5, 3]),
    ("DeepCTR_SequencePoolGrad", "lengths", [None, 5, 3], ([6, 1], tf.int64), [None, 1, None],
     [6, 5, 3]),
    ("DeepCTR_MaskedSequencePoolGrad", "mask", [None, None, 2], ([7, 5], tf.bool),
     [None, 1, None], [7, 5, 2]),
    ("DeepCTR_RaggedSequencePoolGrad", "row_splits", [None, None], ([9], tf.int64),
     [None, 1, 4], [None, 4]),
])
def test_grad_shapes_merge_grad_batch_and_depth(op, rows_arg, values, rows, grad, expected):
    shape = _graph_shape(_sum_grad(op, rows_arg), tf.TensorSpec(values),
                         tf.TensorSpec(rows[0], rows[1]), tf.TensorSpec(grad))
    assert shape.as_list() == expected


@pytest.mark.parametrize("op, rows_arg, values, rows, grad, message", [
    ("DeepCTR_SequencePoolGrad", "lengths", [4, 5, 3], ([4], tf.int32), [5, 1, 3], "grad must"),
    ("DeepCTR_SequencePoolGrad", "lengths", [4, 5, 3], ([4], tf.int32), [4, 1, 2], "grad must"),
    ("DeepCTR_SequencePoolGrad", "lengths", [None, 5, 3], ([3], tf.int32), [4, 1, 3],
     "lengths must have the batch size"),
    ("DeepCTR_MaskedSequencePoolGrad", "mask", [4, 5, 3], ([4, 6], tf.bool), [4, 1, 3],
     "mask must be"),
    ("DeepCTR_RaggedSequencePoolGrad", "row_splits", [None, 3], ([9], tf.int64), [7, 1, 3],
     "grad must"),
    ("DeepCTR_RaggedSequencePoolGrad", "row_splits", [None, 3], ([9], tf.int64), [8, 1, 4],
     "grad must"),
])
def test_grad_shapes_reject_grad_that_does_not_match(op, rows_arg, values, rows, grad, message):
    with pytest.raises(ValueError, match=message):
        _graph_shape(_sum_grad(op, rows_arg), tf.TensorSpec(values),
                     tf.TensorSpec(rows[0], rows[1]), tf.TensorSpec(grad))
