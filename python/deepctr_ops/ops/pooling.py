"""Length-aware sequence pooling: DeepCTR SequencePoolingLayer's math as ops.

Three input layouts, each with sum / mean / max:
* `sequence_pool(values [B,T,E], lengths [B] or [B,1])`;
* `masked_sequence_pool(values [B,T,E], mask [B,T])` (any mask pattern);
* `ragged_sequence_pool(tf.RaggedTensor [B,None,E])` (no padding at all).
All return [B,1,E]. Semantics (DeepCTR's, see cc/kernels/sequence_pool.h):
lengths are clamped to [0,T] like tf.sequence_mask; mean divides by
`length + 1e-8`; max returns max_t(x - 1e9) for a row with no valid step and
splits its gradient evenly over tied maxima. Float lengths, as DeepCTR callers
feed them, are truncated for the mask and used untruncated as mean's divisor.

Each op has a composite twin built from stock TF ops with the same numbers,
used under XLA or with `set_implementation("tf")`.
"""

from __future__ import annotations

import tensorflow as tf

from .. import _implementation, _loader

MODES = ("sum", "mean", "max")
MAX_SHIFT = 1e9
MEAN_EPSILON = 1e-8
_HALF_TYPES = (tf.float16, tf.bfloat16)
_VALUE_TYPES = (tf.float32, tf.float64, tf.float16, tf.bfloat16)


def _gen():
    return _loader.load()


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of 'sum', 'mean', 'max', got {mode!r}")
    return mode


def _check_values(values: tf.Tensor, rank: int, arg: str = "values") -> tf.Tensor:
    values = tf.convert_to_tensor(values)
    if values.dtype not in _VALUE_TYPES:
        raise ValueError(
            f"{arg} must be float32, float64, float16 or bfloat16, got {values.dtype.name}"
        )
    if values.shape.rank is not None and values.shape.rank != rank:
        raise ValueError(f"{arg} must have rank {rank}, got shape {values.shape}")
    return values


def _accumulator(dtype: tf.DType) -> tf.DType:
    return tf.float32 if dtype in _HALF_TYPES else dtype


def _flat_lengths(lengths: tf.Tensor) -> tf.Tensor:
    """[B] or [B,1] lengths -> [B], keeping the dtype."""
    rank = lengths.shape.rank
    if rank == 2:
        if lengths.shape[1] is not None and lengths.shape[1] != 1:
            raise ValueError(f"lengths must have shape [batch] or [batch, 1], got {lengths.shape}")
        return tf.reshape(lengths, [-1])
    if rank != 1:
        raise ValueError(f"lengths must have shape [batch] or [batch, 1], got {lengths.shape}")
    return lengths


def _divide_mean(pooled: tf.Tensor, divisor_base: tf.Tensor, acc: tf.DType) -> tf.Tensor:
    """pooled [B,1,E] in `acc` / (divisor_base [B] + 1e-8), as DeepCTR's mean."""
    divisor = tf.cast(divisor_base, acc) + tf.constant(MEAN_EPSILON, acc)
    return pooled / divisor[:, tf.newaxis, tf.newaxis]


def check_mask(mask) -> tf.Tensor:
    """A Keras-style [batch, time] mask as bool (other dtypes are cast)."""
    mask = tf.convert_to_tensor(mask)
    if mask.dtype != tf.bool:
        mask = tf.cast(mask, tf.bool)
    if mask.shape.rank is not None and mask.shape.rank != 2:
        raise ValueError(f"mask must have shape [batch, time], got {mask.shape}")
    return mask


def mask_lengths(lengths: tf.Tensor) -> tf.Tensor:
    """Integer lengths as tf.sequence_mask sees them (floats truncate to int32)."""
    lengths = tf.convert_to_tensor(lengths)
    if lengths.dtype.is_floating:
        return tf.cast(lengths, tf.int32)
    if lengths.dtype not in (tf.int32, tf.int64):
        return tf.cast(lengths, tf.int64)
    return lengths


# ---- composite twins (stock TF ops, the same numbers as the kernels) --------
#
# Max follows the kernels' rule exactly (sequence_pool.h): only valid steps
# compete in a row that has one (a valid -inf is not tied with masked
# padding), every padded step competes shifted by -1e9 in a dense row with
# none, a NaN step makes the max NaN. The gradient is TF's reduce_max rule over
# the competing steps, (equal / count) * grad, NaN at every competing step of a
# NaN max; `_MaxWeights` holds that Jacobian, which the twin's custom gradient
# and the grad ops' second-order gradient below both use.


class _MaxWeights:
    """Max over the competing steps and d max / d step, in the accumulation type."""

    def __init__(self, top, chosen, share):
        self.top = top  # Dense [B,1,E]; ragged [B,E] (the raw segment max).
        self.chosen = chosen  # Like the values: the steps that get a share.
        self.share = share  # Broadcasts against the values.

    def apply(self, upstream):
        """d max / d steps times `upstream` (like the values): 0 off the chosen
        steps even where `upstream` is NaN, as the kernels write it."""
        return tf.where(self.chosen, self.share * upstream, tf.zeros_like(upstream))


def _tie_share(top, count):
    return tf.where(tf.math.is_nan(top), tf.constant(float("nan"), top.dtype), 1 / count)


def _dense_max_weights(x, valid) -> _MaxWeights:
    """x [B,T,E] in the accumulation type, valid bool [B,T]."""
    acc = x.dtype
    row_empty = tf.logical_not(tf.reduce_any(valid, axis=1))[:, tf.newaxis, tf.newaxis]
    competing = tf.logical_or(valid[:, :, tf.newaxis], row_empty)  # [B,T,1]
    shifted = x - tf.where(row_empty, tf.constant(MAX_SHIFT, acc), tf.constant(0, acc))
    neg_inf = tf.constant(-float("inf"), acc)
    top = tf.reduce_max(tf.where(competing, shifted, neg_inf), axis=1, keepdims=True)
    hit = tf.logical_and(competing, tf.equal(shifted, top))
    count = tf.reduce_sum(tf.cast(hit, acc), axis=1, keepdims=True)
    chosen = tf.logical_or(hit, tf.logical_and(competing, tf.math.is_nan(top)))
    return _MaxWeights(top, chosen, _tie_share(top, count))


def _segment_max(x, segment_ids, batch):
    """unsorted_segment_max that, like tf.reduce_max, is NaN where a NaN is and
    -inf where every step is -inf.

    (TF's segment max keeps a NaN only when it comes last in its segment, and
    starts from the lowest finite value, so all -inf gives that.)
    """
    pooled = tf.math.unsorted_segment_max(x, segment_ids, batch)

    def any_step(flags):
        return tf.math.unsorted_segment_max(tf.cast(flags, tf.int32), segment_ids, batch) > 0

    pooled = tf.where(tf.logical_and(any_step(tf.ones_like(x, tf.bool)),
                                     tf.logical_not(any_step(x > -float("inf")))),
                      tf.constant(-float("inf"), x.dtype), pooled)
    return tf.where(any_step(tf.math.is_nan(x)), tf.constant(float("nan"), x.dtype), pooled)


def _ragged_max_weights(x, segment_ids, batch) -> _MaxWeights:
    """x [N,E] in the accumulation type; every step of a row competes."""
    top = _segment_max(x, segment_ids, batch)
    top_at = tf.gather(top, segment_ids)
    hit = tf.equal(x, top_at)
    count = tf.math.unsorted_segment_sum(tf.cast(hit, x.dtype), segment_ids, batch)
    chosen = tf.logical_or(hit, tf.math.is_nan(top_at))
    return _MaxWeights(top, chosen, tf.gather(_tie_share(top, count), segment_ids))


def _dense_max_twin(x, valid):
    @tf.custom_gradient
    def pool(x):
        parts = _dense_max_weights(x, valid)
        return parts.top, parts.apply

    return pool(x)


def _ragged_max_twin(x, segment_ids, batch, row_lengths):
    acc = x.dtype

    @tf.custom_gradient
    def pool(x):
        parts = _ragged_max_weights(x, segment_ids, batch)
        return parts.top, lambda dy: parts.apply(tf.gather(dy, segment_ids))

    # An empty row pools like a zero-padded one, -1e9 (no gradient).
    return tf.where((row_lengths > 0)[:, tf.newaxis], pool(x), tf.constant(-MAX_SHIFT, acc))


def _dense_pool_twin(values, valid, divisor_base, mode):
    """values [B,T,E], valid bool [B,T], divisor_base [B] -> [B,1,E]."""
    acc = _accumulator(values.dtype)
    x = tf.cast(values, acc)
    if mode == "max":
        pooled = _dense_max_twin(x, valid)
    else:
        valid3 = valid[:, :, tf.newaxis]
        pooled = tf.reduce_sum(tf.where(valid3, x, tf.zeros_like(x)), axis=1, keepdims=True)
        if mode == "mean":
            pooled = _divide_mean(pooled, divisor_base, acc)
    return tf.cast(pooled, values.dtype)


def _ragged_pool_twin(flat_values, row_splits, mode):
    acc = _accumulator(flat_values.dtype)
    x = tf.cast(flat_values, acc)
    batch = tf.shape(row_splits, out_type=row_splits.dtype)[0] - 1
    segment_ids = tf.ragged.row_splits_to_segment_ids(row_splits)
    row_lengths = row_splits[1:] - row_splits[:-1]
    if mode == "max":
        pooled = _ragged_max_twin(x, segment_ids, batch, row_lengths)
    else:
        pooled = tf.math.unsorted_segment_sum(x, segment_ids, batch)
    pooled = pooled[:, tf.newaxis, :]
    if mode == "mean":
        pooled = _divide_mean(pooled, row_lengths, acc)
    return tf.cast(pooled, flat_values.dtype)


# ---- public wrappers ---------------------------------------------------------


@tf.autograph.experimental.do_not_convert
def sequence_pool(values, lengths, mode: str = "mean", name: str | None = None) -> tf.Tensor:
    """Pools values [B,T,E] over the first `lengths` steps -> [B,1,E].

    lengths: [B] or [B,1], int32/int64, or float (truncated for the mask, used
    untruncated as mean's divisor, as DeepCTR does). Values outside [0,T] are
    clamped for the mask; mean still divides by the raw length, as DeepCTR does.
    """
    check_mode(mode)
    with tf.name_scope(name or "sequence_pool"):
        values = _check_values(values, 3)
        raw = tf.convert_to_tensor(lengths)
        flat = _flat_lengths(raw)
        int_lengths = mask_lengths(flat)
        float_divisor = flat.dtype.is_floating and mode == "mean"
        op_mode = "sum" if float_divisor else mode
        if _implementation.use_custom_op():
            pooled = _gen().DeepCTR_SequencePool(
                values=values, lengths=int_lengths, mode=op_mode).pooled
        else:
            valid = tf.sequence_mask(int_lengths, tf.shape(values)[1])
            pooled = _dense_pool_twin(values, valid, tf.cast(flat, tf.float64), op_mode)
        if float_divisor:
            acc = _accumulator(values.dtype)
            pooled = tf.cast(_divide_mean(tf.cast(pooled, acc), flat, acc), values.dtype)
        return pooled


@tf.autograph.experimental.do_not_convert
def masked_sequence_pool(values, mask, mode: str = "mean", name: str | None = None) -> tf.Tensor:
    """Pools values [B,T,E] over the steps where mask [B,T] is true -> [B,1,E].

    The mean divides by the number of true entries (+1e-8), as DeepCTR's
    `supports_masking=True` mode does.
    """
    check_mode(mode)
    with tf.name_scope(name or "masked_sequence_pool"):
        values = _check_values(values, 3)
        mask = check_mask(mask)
        if _implementation.use_custom_op():
            return _gen().DeepCTR_MaskedSequencePool(values=values, mask=mask, mode=mode).pooled
        count = tf.reduce_sum(tf.cast(mask, tf.float64), axis=1)
        return _dense_pool_twin(values, mask, count, mode)


@tf.autograph.experimental.do_not_convert
def ragged_sequence_pool(values, row_splits=None, mode: str = "mean",
                         name: str | None = None) -> tf.Tensor:
    """Pools a ragged [B,None,E] sequence -> [B,1,E], without padding.

    Pass a tf.RaggedTensor (ragged_rank 1), or its flat values [N,E] and
    row_splits [B+1]. An empty row pools like a zero-padded one: 0 for sum and
    mean, -1e9 for max.
    """
    check_mode(mode)
    with tf.name_scope(name or "ragged_sequence_pool"):
        if isinstance(values, tf.RaggedTensor):
            if row_splits is not None:
                raise ValueError("row_splits must be None when values is a tf.RaggedTensor")
            if values.ragged_rank != 1:
                raise ValueError(
                    f"values must be a [batch, None, embedding] RaggedTensor with ragged_rank 1, "
                    f"got ragged_rank {values.ragged_rank}"
                )
            values, row_splits = values.values, values.row_splits
        elif row_splits is None:
            raise ValueError("row_splits is required when values is not a tf.RaggedTensor")
        values = _check_values(values, 2, "values (flat ragged values)")
        row_splits = tf.convert_to_tensor(row_splits)
        if row_splits.dtype not in (tf.int32, tf.int64):
            raise ValueError(f"row_splits must be int32 or int64, got {row_splits.dtype.name}")
        if _implementation.use_custom_op():
            return _gen().DeepCTR_RaggedSequencePool(
                values=values, row_splits=row_splits, mode=mode).pooled
        return _ragged_pool_twin(values, row_splits, mode)


# ---- gradients: C++ grad ops, registered once at import ----------------------


def _register_pool_gradient(op_type: str, rows_arg: str) -> None:
    """Wires `op_type`'s gradient to its C++ grad op `op_type + "Grad"`.

    The grad op takes the forward inputs (values and `rows_arg`: lengths |
    mask | row_splits), the forward's argmax output (where each max is, so that
    max's backward need not search the values again) and the output gradient;
    the row input gets none. argmax is internal: the wrappers return only the
    pooled tensor, and its gradient is ignored.
    """
    grad_op_name = op_type.replace("DeepCTR>", "DeepCTR_") + "Grad"

    @tf.RegisterGradient(op_type)
    def _grad(op, grad, _argmax_grad=None):
        values, rows = op.inputs
        grad_values = getattr(_gen(), grad_op_name)(
            values=values, argmax=op.outputs[1], grad=grad, mode=op.get_attr("mode"),
            **{rows_arg: rows})
        return [grad_values, None]


_register_pool_gradient("DeepCTR>SequencePool", "lengths")
_register_pool_gradient("DeepCTR>MaskedSequencePool", "mask")
_register_pool_gradient("DeepCTR>RaggedSequencePool", "row_splits")


# ---- second order: gradients of the grad ops ---------------------------------
#
# grad_values = J^T grad, where J is the pooling's Jacobian: linear in `grad`,
# and piecewise constant in `values` (sum/mean do not depend on them; max only
# through which steps hold the max, as TF's own reduce_max gradient, whose
# `equal` has no gradient). So the grad op's gradient is 0 for values, and for
# grad it is J applied to the upstream gradient u [like values]: the pooling of
# u itself for sum and mean; for max, u at the max's step, averaged over tied
# steps (NaN when the max is NaN: TF's 0 / 0), 0 for a row with no step. This
# is what makes gradient penalties and Hessian-vector products work.


def _max_tangent_dense(values, valid, upstream):
    """sum_t d max / d step t * upstream[t] -> [B,1,E] (see _MaxWeights)."""
    acc = _accumulator(values.dtype)
    parts = _dense_max_weights(tf.cast(values, acc), valid)
    tangent = tf.reduce_sum(parts.apply(tf.cast(upstream, acc)), axis=1, keepdims=True)
    return tf.cast(tangent, values.dtype)


def _max_tangent_ragged(values, row_splits, upstream):
    acc = _accumulator(values.dtype)
    batch = tf.shape(row_splits, out_type=row_splits.dtype)[0] - 1
    segment_ids = tf.ragged.row_splits_to_segment_ids(row_splits)
    parts = _ragged_max_weights(tf.cast(values, acc), segment_ids, batch)
    tangent = tf.math.unsorted_segment_sum(parts.apply(tf.cast(upstream, acc)), segment_ids,
                                           batch)
    return tf.cast(tangent[:, tf.newaxis, :], values.dtype)


def _register_pool_grad_gradient(op_type: str, rows_arg: str) -> None:
    forward_op_name = op_type.replace("DeepCTR>", "DeepCTR_")[: -len("Grad")]

    @tf.RegisterGradient(op_type)
    def _grad(op, upstream):
        values, rows = op.inputs[0], op.inputs[1]
        mode = op.get_attr("mode")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode != "max":
            tangent = getattr(_gen(), forward_op_name)(
                values=upstream, mode=mode, **{rows_arg: rows}).pooled
        elif rows_arg == "row_splits":
            tangent = _max_tangent_ragged(values, rows, upstream)
        else:
            valid = rows if rows_arg == "mask" else tf.sequence_mask(
                tf.reshape(rows, [-1]), tf.shape(values)[1])
            tangent = _max_tangent_dense(values, valid, upstream)
        return [None, None, None, tangent]


_register_pool_grad_gradient("DeepCTR>SequencePoolGrad", "lengths")
_register_pool_grad_gradient("DeepCTR>MaskedSequencePoolGrad", "mask")
_register_pool_grad_gradient("DeepCTR>RaggedSequencePoolGrad", "row_splits")
