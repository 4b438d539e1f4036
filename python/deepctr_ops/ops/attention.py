"""Masked attention softmax: DeepCTR Transformer's masking + blinding + softmax as one op.

`attention_softmax(scores [h*B, Tq, Tk], key_valid [B, Tk])` returns, over Tk,

    softmax(where(key_valid[b, k] and not (blinding and q == k), scores / divisor, NEG))

for row n = j*B + b (head-major rows, DeepCTR's layout), NEG = -2**32 + 1. The
padding logit is *written into* the logits, so a row with no eligible key is
uniform over all Tk keys (DeepCTR's behaviour). The gradient is zero at masked
entries. The masks are broadcast from [B, Tk]: nothing of size [h*B, Tq, Tk]
is built besides the scores and the probabilities.

The custom op `DeepCTR>AttentionSoftmax` does this in one pass over the logits
(and `DeepCTR>AttentionSoftmaxGrad` the gradient in one pass), for float32 and
float64. The pure-TF composite below is its twin, with the same numbers; it is
used under XLA, with `set_implementation("tf")`, and for float16 and bfloat16
(the op has no 16-bit kernels).

The op's `divisor` is a float32 attr: for float64 scores the division is by the
float32-rounded divisor, and the twin rounds it the same way so that both agree.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .. import _implementation, _loader

PADDING_LOGIT = -(2**32) + 1
_OP_DTYPES = (tf.float32, tf.float64)


@tf.autograph.experimental.do_not_convert
def attention_softmax(scores, key_valid, divisor: float = 1.0, blinding: bool = False,
                      heads: int | None = None, name: str | None = None) -> tf.Tensor:
    """Masked (optionally blinded) softmax of raw attention logits.

    scores: [h*B, Tq, Tk], row j*B + b is head j of sample b. float32 and float64
        use the custom op; float16 and bfloat16 use the pure-TF twin.
    key_valid: bool [B, Tk] (anything else is cast to bool).
    divisor: the logits are divided by it first (1.0: unchanged, exactly). It is
        rounded to float32 (the op's attr type), also for float64 scores.
    blinding: also mask the diagonal (q == k).
    heads: h. scores must then have exactly h*B rows (InvalidArgumentError, or
        ValueError for static shapes, otherwise). None accepts any multiple of B.
    """
    with tf.name_scope(name or "attention_softmax"):
        scores = tf.convert_to_tensor(scores)
        if scores.shape.rank is not None and scores.shape.rank != 3:
            raise ValueError(f"scores must have shape [heads*batch, Tq, Tk], got {scores.shape}")
        key_valid = tf.convert_to_tensor(key_valid)
        if key_valid.dtype != tf.bool:
            key_valid = tf.cast(key_valid, tf.bool)
        if key_valid.shape.rank is not None and key_valid.shape.rank != 2:
            raise ValueError(f"key_valid must have shape [batch, Tk], got {key_valid.shape}")
        if heads is not None and (not isinstance(heads, int) or heads < 1):
            raise ValueError(f"heads must be a positive int or None, got {heads!r}")
        _check_rows(scores.shape[0], key_valid.shape[0], heads)
        if scores.dtype == tf.float64:
            divisor = float(np.float32(divisor))
        if _implementation.use_custom_op() and scores.dtype in _OP_DTYPES:
            return _loader.load().DeepCTR_AttentionSoftmax(
                scores=scores, key_valid=key_valid, divisor=float(divisor),
                blinding=bool(blinding), heads=heads or 0)
        if heads is not None:
            tf.debugging.assert_equal(
                tf.shape(scores)[0], heads * tf.shape(key_valid)[0],
                message=f"scores.shape[0] must be heads ({heads}) * key_valid.shape[0]")
        return _attention_softmax_twin(scores, key_valid, float(divisor), bool(blinding))


def _check_rows(rows, batch, heads) -> None:
    """Static check of rows == heads * batch (any multiple without heads)."""
    if rows is None or batch is None:
        return
    ok = rows == heads * batch if heads else (rows % batch == 0 if batch else rows == 0)
    if not ok:
        raise ValueError(
            f"scores.shape[0] ({rows}) must be heads ({heads if heads else 'any'}) * "
            f"key_valid.shape[0] ({batch}): scores is [heads*batch, Tq, Tk], key_valid "
            f"[batch, Tk]")


def eligible_keys(key_valid: tf.Tensor, time_q, time_k, blinding: bool) -> tf.Tensor:
    """bool [B, 1 or Tq, Tk]: key k is eligible for query q of sample b."""
    valid = key_valid[:, tf.newaxis, :]
    if blinding:
        valid = tf.logical_and(
            valid, tf.logical_not(tf.eye(time_q, num_columns=time_k, dtype=tf.bool))[tf.newaxis])
    return valid


def _attention_softmax_twin(scores, key_valid, divisor, blinding):
    if divisor != 1.0:
        scores = scores / divisor
    shape = tf.shape(scores)
    batch = tf.shape(key_valid)[0]
    eligible = eligible_keys(key_valid, shape[1], shape[2], blinding)
    per_head = tf.reshape(scores, tf.stack([-1, batch, shape[1], shape[2]]))
    # float16 cannot hold -2**32 + 1: its lowest finite value (-65504) pads
    # instead, so a row with no eligible key stays uniform rather than NaN.
    padding = max(PADDING_LOGIT, float(scores.dtype.min))
    logits = tf.where(eligible[tf.newaxis], per_head, tf.constant(padding, scores.dtype))
    return softmax_last_axis(tf.reshape(logits, shape))


def softmax_last_axis(logits: tf.Tensor) -> tf.Tensor:
    """exp(x - max) / sum over the last axis, 16-bit types in float32.

    A NaN or +inf logit makes its whole row NaN, as TF's Eigen and GPU softmax
    and the op give (TF's oneDNN float32 CPU softmax keeps the other entries
    finite instead, so tf.nn.softmax itself is not used).
    """
    acc = tf.float32 if logits.dtype in (tf.float16, tf.bfloat16) else logits.dtype
    x = tf.cast(logits, acc)
    top = tf.stop_gradient(tf.reduce_max(x, axis=-1, keepdims=True))
    e = tf.exp(x - top)
    return tf.cast(e / tf.reduce_sum(e, axis=-1, keepdims=True), logits.dtype)


@tf.RegisterGradient("DeepCTR>AttentionSoftmax")
def _attention_softmax_grad(op, grad):
    probs = op.outputs[0]
    key_valid = op.inputs[1]
    grad_scores = _loader.load().DeepCTR_AttentionSoftmaxGrad(
        grad=grad, probs=probs, key_valid=key_valid, divisor=op.get_attr("divisor"),
        blinding=op.get_attr("blinding"), heads=op.get_attr("heads"))
    return [grad_scores, None]


@tf.RegisterGradient("DeepCTR>AttentionSoftmaxGrad")
def _attention_softmax_grad_grad(op, upstream):
    """Second order: the grad op computes ds = e * (g - sum(g * p)) * p / d
    (e: eligible, d: divisor). With v = e * u * p / d and w = e * u / d for the
    upstream u: dL/dg = v - p * sum(v), dL/dp = w * (g - sum(g * p)) - g * sum(v).
    Composite TF ops, so higher orders differentiate too."""
    grad, probs, key_valid = op.inputs
    dtype = grad.dtype
    divisor = tf.cast(tf.constant(op.get_attr("divisor"), tf.float32), dtype)
    shape = tf.shape(grad)
    batch = tf.shape(key_valid)[0]
    eligible = eligible_keys(key_valid, shape[1], shape[2], op.get_attr("blinding"))
    eligible = tf.reshape(tf.broadcast_to(eligible[tf.newaxis],
                                          tf.stack([shape[0] // batch, batch, shape[1], shape[2]])),
                          shape)
    zero = tf.zeros_like(upstream)
    w = tf.where(eligible, upstream, zero) / divisor
    v = w * probs
    sum_v = tf.reduce_sum(v, axis=-1, keepdims=True)
    dot = tf.reduce_sum(grad * probs, axis=-1, keepdims=True)
    return [v - probs * sum_v, w * (grad - dot) - grad * sum_v, None]
