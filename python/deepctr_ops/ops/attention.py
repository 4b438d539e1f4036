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


def attention_softmax(scores, key_valid, divisor: float = 1.0, blinding: bool = False,
                      name: str | None = None) -> tf.Tensor:
    """Masked (optionally blinded) softmax of raw attention logits.

    scores: [h*B, Tq, Tk], row j*B + b is head j of sample b. float32 and float64
        use the custom op; float16 and bfloat16 use the pure-TF twin.
    key_valid: bool [B, Tk] (anything else is cast to bool).
    divisor: the logits are divided by it first (1.0: unchanged, exactly). It is
        rounded to float32 (the op's attr type), also for float64 scores.
    blinding: also mask the diagonal (q == k).
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
        if scores.dtype == tf.float64:
            divisor = float(np.float32(divisor))
        if _implementation.use_custom_op() and scores.dtype in _OP_DTYPES:
            return _loader.load().DeepCTR_AttentionSoftmax(
                scores=scores, key_valid=key_valid, divisor=float(divisor),
                blinding=bool(blinding))
        return _attention_softmax_twin(scores, key_valid, float(divisor), bool(blinding))


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
    return tf.nn.softmax(tf.reshape(logits, shape))


@tf.RegisterGradient("DeepCTR>AttentionSoftmax")
def _attention_softmax_grad(op, grad):
    probs = op.outputs[0]
    key_valid = op.inputs[1]
    grad_scores = _loader.load().DeepCTR_AttentionSoftmaxGrad(
        grad=grad, probs=probs, key_valid=key_valid, divisor=op.get_attr("divisor"),
        blinding=op.get_attr("blinding"))
    return [grad_scores, None]
