"""Fused embedding lookup + sequence pooling: ids in, pooled vectors out.

`embedding_sequence_pool(table [V,E], ids, ...)` equals Keras' `Embedding`
followed by DeepCTR's `SequencePoolingLayer` (and, with `weights`, by
`WeightedSequenceLayer` in between), without the [B,T,E] tensor:

* ids [B,T] with `lengths` [B] / [B,1] (DeepCTR's `supports_masking=False`),
  a Keras-style `mask` [B,T] (any pattern), or neither (every step; with
  `mask_zero=True` that is DeepCTR's `supports_masking=True` mode fed by
  `Embedding(mask_zero=True)`); or ragged ids, a `tf.RaggedTensor` [B,None].
* `mask_zero=True`: a step whose id is 0 is padding (ANDed with lengths/mask;
  dropped from ragged rows). The mean then divides by the number of valid
  steps, as DeepCTR's mask mode does; without it, by the raw length.
* `weights` (like ids, or ragged like them): DeepCTR's weighted sequence
  feature. Each valid step's embedding is multiplied by its weight; with
  `weight_normalization=True` the weights are first softmaxed over the valid
  steps, padding at -2**32+1 (so a row with none is uniform over all T), as
  `WeightedSequenceLayer(weight_normalization=True)` does.
* `mode` sum / mean / max with SequencePoolingLayer's semantics (see
  ops/pooling.py): a dense row with no valid step pools max over every step
  shifted by -1e9, and its max gradient is spread over them.

Output [B,1,E]. The gradient with respect to the table is a `tf.IndexedSlices`
over the steps the forward pooled (the valid ones; every step of a dense max
row with none), in (row, step) order and not de-duplicated, as `tf.gather`'s
gradient is; optimizers sum duplicates when they apply it. Only the ids of
those steps are read and checked: an id outside [0, V) is an
InvalidArgumentError on CPU; on GPU, as TF's own GPU gather, it reads as a row
of zeros (its gradient row keeps the id, as tf.gather's gradient does).

A `tf.Variable` table is read in place through its handle (as Keras'
`Embedding` does with ResourceGather): reading it as a tensor would copy the
whole table on every step once a sparse optimizer update has touched it.
"""

from __future__ import annotations

import tensorflow as tf

from .. import _implementation, _loader
from .pooling import (
    _accumulator,
    _dense_pool_twin,
    _flat_lengths,
    _ragged_pool_twin,
    check_mask,
    check_mode,
    mask_lengths,
)

WEIGHT_PADDING = -(2.0**32) + 1
_TABLE_TYPES = (tf.float32, tf.float64, tf.float16, tf.bfloat16)


def _gen():
    return _loader.load()


def _is_variable(table) -> bool:
    return isinstance(table, tf.Variable) and hasattr(table, "handle")


def _unwrap_variable(table):
    """A Keras 3 variable -> its tf.Variable; anything else unchanged."""
    value = getattr(table, "value", None)
    if not isinstance(table, tf.Variable) and isinstance(value, tf.Variable):
        return value
    return table


def _check_table(table):
    table = _unwrap_variable(table)
    if not _is_variable(table):
        table = tf.convert_to_tensor(table)
    if table.dtype not in _TABLE_TYPES:
        raise ValueError(
            f"table must be float32, float64, float16 or bfloat16, got {table.dtype.name}")
    if table.shape.rank is not None and table.shape.rank != 2:
        raise ValueError(f"table must have shape [vocabulary, embedding], got {table.shape}")
    return table


def _check_ids(ids, rank: int, arg: str = "ids"):
    ids = tf.convert_to_tensor(ids)
    if ids.dtype not in (tf.int32, tf.int64):
        raise ValueError(f"{arg} must be int32 or int64, got {ids.dtype.name}")
    if ids.shape.rank is not None and ids.shape.rank != rank:
        raise ValueError(f"{arg} must have rank {rank}, got shape {ids.shape}")
    return ids


def _normalized_weights(weights, valid, normalize: bool):
    """DeepCTR WeightedSequenceLayer's per-step multiplier [B,T] (acc dtype)."""
    if normalize:
        logits = tf.where(valid, weights, tf.constant(WEIGHT_PADDING, weights.dtype))
        return tf.nn.softmax(logits, axis=1)
    return tf.where(valid, weights, tf.zeros_like(weights))


def _table_rows(table, ids):
    """tf.gather of the table rows (the twin's lookup)."""
    if _is_variable(table):
        return table.sparse_read(ids)
    return tf.gather(table, ids)


# ---- composite twin ----------------------------------------------------------


def _dense_twin(table, ids, valid, divisor, weights, mode):
    """Gather + the pooling twin. Only ids that the kernel reads are gathered
    (the rest read row 0), so padding ids are never checked, as in the op."""
    if mode == "max":
        row_empty = tf.logical_not(tf.reduce_any(valid, axis=1, keepdims=True))
        read = tf.logical_or(valid, row_empty)
    else:
        read = valid
    safe_ids = tf.where(read, ids, tf.zeros_like(ids))
    # Unread steps hold zeros, not row 0: a non-finite row there would reach
    # the weights' gradient as 0 * inf (the op never reads them).
    values = tf.where(read[:, :, tf.newaxis], _table_rows(table, safe_ids),
                      tf.zeros([], table.dtype))
    if weights is not None:
        acc = _accumulator(values.dtype)
        values = tf.cast(tf.cast(values, acc) * tf.cast(weights, acc)[:, :, tf.newaxis],
                         values.dtype)
    return _dense_pool_twin(values, valid, divisor, mode)


def _ragged_twin(table, flat_ids, row_splits, flat_weights, mode, mask_zero):
    if mask_zero:
        keep = tf.not_equal(flat_ids, 0)
        rt = tf.RaggedTensor.from_row_splits(flat_ids, row_splits)
        rt = tf.ragged.boolean_mask(rt, tf.RaggedTensor.from_row_splits(keep, row_splits))
        if flat_weights is not None:
            flat_weights = tf.boolean_mask(flat_weights, keep)
        flat_ids, row_splits = rt.values, rt.row_splits
    values = _table_rows(table, flat_ids)
    if flat_weights is not None:
        acc = _accumulator(values.dtype)
        values = tf.cast(tf.cast(values, acc) * tf.cast(flat_weights, acc)[:, tf.newaxis],
                         values.dtype)
    return _ragged_pool_twin(values, row_splits, mode)


# ---- the wrapper -------------------------------------------------------------


def _table_args(table):
    """(table input for the op, its dtype). A variable passes its handle and is
    recorded as read, for the tape and for tf.function, as its own
    sparse_read does."""
    if _is_variable(table):
        _variable_accessed(table)
        return table.handle, table.dtype
    return table, table.dtype


def _variable_accessed(variable) -> None:
    from tensorflow.python.ops import resource_variable_ops  # No public equivalent.

    resource_variable_ops.variable_accessed(variable)


@tf.autograph.experimental.do_not_convert
def embedding_sequence_pool(table, ids, lengths=None, mask=None, weights=None,
                            mode: str = "mean", mask_zero: bool = False,
                            weight_normalization: bool = False,
                            name: str | None = None) -> tf.Tensor:
    """Looks up and pools sequences of ids -> [B,1,E], never building [B,T,E].

    Args:
      table: [V,E] float32/float64/float16/bfloat16: a tf.Variable (read in
        place), a Keras variable, or a tensor.
      ids: [B,T] int32/int64, or a tf.RaggedTensor [B,None].
      lengths: [B] or [B,1] int (or float: truncated for the mask, the mean
        divides by the raw value, as DeepCTR does). Dense ids only.
      mask: [B,T] bool, any pattern. Dense ids only; not with lengths.
      weights: per-step weights like ids (ragged ids: a RaggedTensor with the
        same row_splits, or its flat values).
      mode: 'sum', 'mean' or 'max'.
      mask_zero: id 0 is padding (DeepCTR's Embedding(mask_zero=True)).
      weight_normalization: softmax the weights over the valid steps first.
    """
    check_mode(mode)
    with tf.name_scope(name or "embedding_sequence_pool"):
        table = _check_table(table)
        if isinstance(ids, tf.RaggedTensor):
            if lengths is not None or mask is not None:
                raise ValueError("lengths and mask must be None when ids is a tf.RaggedTensor")
            return _ragged_call(table, ids, weights, mode, mask_zero, weight_normalization)
        return _dense_call(table, ids, lengths, mask, weights, mode, mask_zero,
                           weight_normalization)


def _dense_valid(ids, lengths, mask, mask_zero):
    """(valid [B,T] bool, row-info for the op, mean divisor or None = count)."""
    time = tf.shape(ids)[1]
    if lengths is not None:
        valid = tf.sequence_mask(lengths, time)
    elif mask is not None:
        valid = mask
    else:
        valid = tf.ones_like(ids, tf.bool)
    if mask_zero:
        valid = tf.logical_and(valid, tf.not_equal(ids, 0))
    return valid


def _dense_call(table, ids, lengths, mask, weights, mode, mask_zero, weight_normalization):
    ids = _check_ids(ids, 2)
    if lengths is not None and mask is not None:
        raise ValueError("pass lengths or mask, not both")
    raw_lengths = None
    int_lengths = None
    if lengths is not None:
        raw_lengths = _flat_lengths(tf.convert_to_tensor(lengths))
        int_lengths = mask_lengths(raw_lengths)
    if mask is not None:
        mask = check_mask(mask)
    acc = _accumulator(table.dtype)
    valid = None
    step_weights = None
    if weights is not None:
        weights = tf.convert_to_tensor(weights)
        if not weights.dtype.is_floating:
            raise ValueError(f"weights must be floating point, got {weights.dtype.name}")
        if weights.shape.rank == 3 and weights.shape[2] == 1:  # DeepCTR's [B,T,1].
            weights = weights[:, :, 0]
        if weights.shape.rank is not None and weights.shape.rank != 2:
            raise ValueError(f"weights must have shape [batch, time] like ids, got {weights.shape}")
        if not weights.shape.is_compatible_with(ids.shape):
            raise ValueError(
                f"weights must have the shape of ids {ids.shape}, got {weights.shape}")
        valid = _dense_valid(ids, int_lengths, mask, mask_zero)
        step_weights = _normalized_weights(tf.cast(weights, acc), valid, weight_normalization)
        step_weights = tf.cast(step_weights, table.dtype)
    # Float lengths: the mean divides by the untruncated length (DeepCTR).
    float_divisor = (raw_lengths is not None and raw_lengths.dtype.is_floating
                     and mode == "mean" and not mask_zero)
    op_mode = "sum" if float_divisor else mode
    if _implementation.use_custom_op():
        table_input, dtype = _table_args(table)
        weighted = step_weights is not None
        weight_input = step_weights if weighted else tf.zeros([0], dtype)
        common = dict(table=table_input, ids=ids, weights=weight_input, mode=op_mode,
                      mask_zero=mask_zero, weighted=weighted)
        if int_lengths is not None:
            pooled = _gen().DeepCTR_EmbeddingSequencePool(lengths=int_lengths, **common).pooled
        elif mask is not None:
            pooled = _gen().DeepCTR_MaskedEmbeddingSequencePool(mask=mask, **common).pooled
        else:
            # Every step: the lengths op with lengths T.
            full = tf.fill(tf.shape(ids)[:1], tf.shape(ids, out_type=tf.int32)[1])
            pooled = _gen().DeepCTR_EmbeddingSequencePool(lengths=full, **common).pooled
    else:
        if valid is None:
            valid = _dense_valid(ids, int_lengths, mask, mask_zero)
        if raw_lengths is not None and not mask_zero:
            divisor = tf.cast(raw_lengths, tf.float64)
        else:
            divisor = tf.reduce_sum(tf.cast(valid, tf.float64), axis=1)
        pooled = _dense_twin(table, ids, valid, divisor, step_weights, op_mode)
    if float_divisor:
        pooled = tf.cast(tf.cast(pooled, acc) / (tf.cast(raw_lengths, acc) + tf.constant(
            1e-8, acc))[:, tf.newaxis, tf.newaxis], table.dtype)
    return pooled


def _ragged_call(table, ids, weights, mode, mask_zero, weight_normalization):
    if ids.ragged_rank != 1 or ids.shape.rank != 2:
        raise ValueError(f"ids must be a [batch, None] RaggedTensor, got shape {ids.shape}")
    flat_ids = _check_ids(ids.values, 1, "ids (flat ragged values)")
    row_splits = ids.row_splits
    acc = _accumulator(table.dtype)
    step_weights = None
    if weights is not None:
        if isinstance(weights, tf.RaggedTensor):
            weights = weights.values
        weights = tf.convert_to_tensor(weights)
        if not weights.dtype.is_floating:
            raise ValueError(f"weights must be floating point, got {weights.dtype.name}")
        if weights.shape.rank is not None and weights.shape.rank != 1:
            raise ValueError(
                f"weights must be ragged like ids (or its flat values), got {weights.shape}")
        w = tf.cast(weights, acc)
        if weight_normalization:
            # Softmax within each row over its valid (non-zero-id) steps.
            valid = tf.not_equal(flat_ids, 0) if mask_zero else tf.ones_like(flat_ids, tf.bool)
            logits = tf.where(valid, w, tf.constant(WEIGHT_PADDING, acc))
            w = tf.RaggedTensor.from_row_splits(logits, row_splits)
            w = tf.nn.softmax(w, axis=1).values
        step_weights = tf.cast(w, table.dtype)
    if _implementation.use_custom_op():
        table_input, dtype = _table_args(table)
        weighted = step_weights is not None
        return _gen().DeepCTR_RaggedEmbeddingSequencePool(
            table=table_input, ids=flat_ids, row_splits=row_splits,
            weights=step_weights if weighted else tf.zeros([0], dtype), mode=mode,
            mask_zero=mask_zero, weighted=weighted).pooled
    return _ragged_twin(table, flat_ids, row_splits, step_weights, mode, mask_zero)


# ---- gradients ---------------------------------------------------------------


def _table_shape(op):
    table = op.inputs[0]
    if table.dtype == tf.resource:
        return tf.raw_ops.VariableShape(input=table, out_type=tf.int64)
    return tf.shape(table, out_type=tf.int64)


def _register_gradient(op_type: str, rows_arg: str) -> None:
    grad_op_name = op_type.replace("DeepCTR>", "DeepCTR_") + "Grad"

    @tf.RegisterGradient(op_type)
    def _grad(op, grad, _argmax_grad=None):
        table, ids, rows, weights = op.inputs
        weighted = op.get_attr("weighted")
        out = getattr(_gen(), grad_op_name)(
            table=table, ids=ids, weights=weights, argmax=op.outputs[1], grad=grad,
            mode=op.get_attr("mode"), mask_zero=op.get_attr("mask_zero"), weighted=weighted,
            **{rows_arg: rows})
        table_grad = tf.IndexedSlices(out.grad_table_values, out.grad_table_indices,
                                      _table_shape(op))
        return [table_grad, None, None, out.grad_weights if weighted else None]


_register_gradient("DeepCTR>EmbeddingSequencePool", "lengths")
_register_gradient("DeepCTR>MaskedEmbeddingSequencePool", "mask")
_register_gradient("DeepCTR>RaggedEmbeddingSequencePool", "row_splits")


def _register_no_second_order(op_type: str) -> None:
    @tf.RegisterGradient(op_type)
    def _grad(op, *grads):
        raise LookupError(
            f"{op_type} has no gradient (second-order gradients of the fused embedding "
            "pooling are not implemented); use deepctr_ops.set_implementation('tf') for "
            "gradient penalties or Hessian-vector products through it")


for _op in ("EmbeddingSequencePoolGrad", "MaskedEmbeddingSequencePoolGrad",
            "RaggedEmbeddingSequencePoolGrad"):
    _register_no_second_order("DeepCTR>" + _op)
