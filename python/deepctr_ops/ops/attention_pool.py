"""DIN attention pooling (DeepCTR AttentionSequencePoolingLayer) as one op.

`attention_pool(query [B,1,E], keys [B,T,E], kernels, biases, lengths=... | mask=...)`
computes DeepCTR's LocalActivationUnit scores of every valid step,

    s_t = MLP([q, k_t, q - k_t, q * k_t])     (hidden layers `activation`, last linear)

masks them (`-2**32 + 1` before a softmax over T with `weight_normalization`,
0 without), and returns the scores [B,1,T] (`return_score`) or the weighted sum
of the keys [B,1,E]. kernels/biases are DeepCTR's: kernel0..kernel{H-1} then the
final kernel [h_last or 4E, 1]; bias0..bias{H-1} then the final bias [1].

The custom op `DeepCTR>AttentionPool` never builds the [B,T,4E] input: the first
layer is linear in it, so per row it folds into one [E,h1] matrix applied to
the valid keys only (see cc/kernels/attention_pool.h). Its gradient is the C++
op `DeepCTR>AttentionPoolGrad`, which is not differentiable again (a second
derivative raises a LookupError naming it; the composite twin has one). On the
CPU the forward also outputs the valid steps' MLP activations when a gradient
consumes them (training graphs, tapes), so the gradient does not recompute them.

The composite twin is DeepCTR's own graph on stock TF ops (tile, concat,
tensordot, where, softmax, matmul); it runs under XLA, with
`set_implementation("tf")`, and for activations the op does not fuse (any
callable, e.g. DeepCTR's Dice layers). float16/bfloat16 run through the float32
op (cast in, cast out), so they accumulate in float32.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

from .. import _implementation, _loader
from .attention import PADDING_LOGIT, softmax_last_axis
from .pooling import check_mask, mask_lengths

FUSED_ACTIVATIONS = ("sigmoid", "relu", "tanh", "linear")
_OP_DTYPES = (tf.float32, tf.float64)
_HALF_DTYPES = (tf.float16, tf.bfloat16)


def fused_activation_name(activation) -> str | None:
    """The op's name for `activation` ('linear' for None), or None if the op cannot fuse it."""
    if activation is None:
        return "linear"
    if isinstance(activation, str) and activation in FUSED_ACTIVATIONS:
        return activation
    return None


def _check_inputs(query, keys):
    query = tf.convert_to_tensor(query)
    keys = tf.convert_to_tensor(keys, dtype=query.dtype)
    if not query.dtype.is_floating:
        raise ValueError(f"query must be a float tensor, got {query.dtype.name}")
    if query.shape.rank is not None and query.shape.rank != 3:
        raise ValueError(f"query must have shape [batch, 1, embedding], got {query.shape}")
    if keys.shape.rank is not None and keys.shape.rank != 3:
        raise ValueError(f"keys must have shape [batch, T, embedding], got {keys.shape}")
    if query.shape.rank == 3 and query.shape[1] is not None and query.shape[1] != 1:
        raise ValueError(f"query must have shape [batch, 1, embedding] (T = 1), got {query.shape}")
    if query.shape.rank == 3 and keys.shape.rank == 3:
        if not query.shape[2:].is_compatible_with(keys.shape[2:]):
            raise ValueError(
                f"query and keys must have the same embedding size E, got {query.shape} and "
                f"{keys.shape}")
        if not query.shape[:1].is_compatible_with(keys.shape[:1]):
            raise ValueError(
                f"query and keys must have the same batch size, got {query.shape} and "
                f"{keys.shape}")
    return query, keys


def _check_weights(kernels, biases, embedding, dtype):
    kernels = [tf.convert_to_tensor(k) for k in kernels]
    biases = [tf.convert_to_tensor(b) for b in biases]
    if not kernels or len(kernels) != len(biases):
        raise ValueError(
            f"kernels and biases must be non-empty and equally long, got {len(kernels)} and "
            f"{len(biases)}")
    width = 4 * embedding if embedding is not None else None
    for i, (k, b) in enumerate(zip(kernels, biases)):
        last = i == len(kernels) - 1
        kname = "kernel" if last else f"kernel{i}"
        bname = "bias" if last else f"bias{i}"
        if k.shape.rank != 2 or (width is not None and k.shape[0] is not None
                                 and k.shape[0] != width):
            raise ValueError(
                f"{kname} must have shape [{width}, units] to chain (4 * E for the first), "
                f"got {k.shape}")
        if last and k.shape[1] is not None and k.shape[1] != 1:
            raise ValueError(f"{kname} (the score layer) must have shape [{width}, 1], "
                             f"got {k.shape}")
        if b.shape.rank != 1 or not b.shape.is_compatible_with(k.shape[1:]):
            raise ValueError(f"{bname} must have shape [{k.shape[1]}], got {b.shape}")
        width = k.shape[1]
    return ([tf.cast(k, dtype) for k in kernels], [tf.cast(b, dtype) for b in biases])


def _valid_steps(lengths, mask, time) -> tf.Tensor:
    """bool [B,T] from lengths (as tf.sequence_mask) or a mask."""
    if mask is not None:
        return tf.cast(mask, tf.bool)
    return tf.sequence_mask(mask_lengths(tf.reshape(lengths, [-1])), time)


@tf.autograph.experimental.do_not_convert
def attention_pool(query, keys, kernels: Sequence, biases: Sequence, lengths=None, mask=None,
                   activation="sigmoid", weight_normalization: bool = False,
                   return_score: bool = False, name: str | None = None) -> tf.Tensor:
    """DIN attention pooling -> [B,1,E], or the scores [B,1,T] with return_score.

    Give exactly one of lengths ([B] or [B,1], int32/int64 or float, truncated;
    clamped to [0,T] like tf.sequence_mask) and mask (bool [B,T], any pattern).
    activation: 'sigmoid', 'relu', 'tanh', 'linear' or None (fused in the op),
    or any callable (composite twin only), or a list of callables, one per
    hidden layer.
    """
    if (lengths is None) == (mask is None):
        raise ValueError("give exactly one of lengths and mask")
    with tf.name_scope(name or "attention_pool"):
        query, keys = _check_inputs(query, keys)
        embedding = query.shape[2] if query.shape.rank == 3 else None
        if embedding is None and keys.shape.rank == 3:
            embedding = keys.shape[2]
        kernels, biases = _check_weights(kernels, biases, embedding, query.dtype)
        fused = fused_activation_name(activation) if not isinstance(activation, list) else None
        if mask is not None:
            mask = check_mask(mask)
        else:
            lengths = tf.convert_to_tensor(lengths)
            if lengths.shape.rank not in (None, 1, 2) or (
                    lengths.shape.rank == 2 and lengths.shape[1] not in (None, 1)):
                raise ValueError(f"lengths must have shape [batch] or [batch, 1], got "
                                 f"{lengths.shape}")
        if fused is not None and _implementation.use_custom_op():
            return _attention_pool_op(query, keys, kernels, biases, lengths, mask, fused,
                                      weight_normalization, return_score)
        activations = activation if isinstance(activation, list) else (
            [activation_function(activation)] * (len(kernels) - 1))
        valid = _valid_steps(lengths, mask, tf.shape(keys)[1])
        return attention_pool_twin(query, keys, valid, kernels, biases, activations,
                                   weight_normalization, return_score,
                                   position_wise=fused is not None)


def _attention_pool_op(query, keys, kernels, biases, lengths, mask, activation,
                       weight_normalization, return_score):
    dtype = query.dtype
    if dtype in _HALF_DTYPES:
        query, keys = tf.cast(query, tf.float32), tf.cast(keys, tf.float32)
        kernels = [tf.cast(k, tf.float32) for k in kernels]
        biases = [tf.cast(b, tf.float32) for b in biases]
    elif dtype not in _OP_DTYPES:
        raise ValueError(f"query must be float32, float64, float16 or bfloat16, got {dtype.name}")
    rows = mask if mask is not None else mask_lengths(lengths)
    out = _loader.load().DeepCTR_AttentionPool(
        query=query, keys=keys, rows=rows, kernels=kernels, biases=biases,
        activation=activation, weight_normalization=bool(weight_normalization),
        return_score=bool(return_score)).output
    return tf.cast(out, dtype) if dtype in _HALF_DTYPES else out


def activation_function(activation) -> Callable:
    """A Keras activation name (None: linear) or callable as a function."""
    if activation is None or activation == "linear":
        return tf.identity
    if isinstance(activation, str):
        return tf.keras.activations.get(activation)
    return activation


def attention_pool_twin(query, keys, valid, kernels, biases, activations: Sequence[Callable],
                        weight_normalization: bool, return_score: bool,
                        position_wise: bool = False) -> tf.Tensor:
    """DeepCTR's own graph (LocalActivationUnit + AttentionSequencePoolingLayer.call).

    valid: bool [B,T]; activations: one callable per hidden layer.
    position_wise: the activations act on each position alone (the op's fused
    ones), so a masked position's score, which is discarded, may be computed
    from zeros instead of its key, as the op never reads it: then NaN or Inf in
    padding reaches neither the result nor a gradient. Dice's batch statistics
    span every position, padding included, as in DeepCTR, so it keeps the keys.
    """
    dtype = query.dtype
    acc = tf.float32 if dtype in _HALF_DTYPES else dtype
    time = tf.shape(keys)[1]
    used = valid
    if weight_normalization:  # A row with no valid step pools all its keys (uniform).
        used = tf.logical_or(valid, tf.logical_not(tf.reduce_any(valid, axis=1, keepdims=True)))
    if position_wise:
        keys = tf.where(used[:, :, tf.newaxis], keys, tf.zeros([], keys.dtype))
    queries = tf.tile(query, tf.stack([1, time, 1]))
    x = tf.concat([queries, keys, queries - keys, queries * keys], axis=-1)
    for kernel, bias, act in zip(kernels[:-1], biases[:-1], activations):
        x = act(tf.nn.bias_add(tf.tensordot(x, kernel, axes=(-1, 0)), bias))
    score = tf.nn.bias_add(tf.tensordot(x, kernels[-1], axes=(-1, 0)), biases[-1])
    score = tf.cast(tf.transpose(score, (0, 2, 1)), acc)  # [B,1,T]
    pad = PADDING_LOGIT if weight_normalization else 0.0
    score = tf.where(valid[:, tf.newaxis, :], score, tf.constant(pad, acc))
    if weight_normalization:
        # exp(x - max) / sum, as the op: a NaN score makes its row NaN (TF's
        # oneDNN float32 softmax would keep the row's other entries finite).
        score = softmax_last_axis(score)
    if return_score:
        return tf.cast(score, dtype)
    # Keys with weight 0 by masking are not read, as in the op: NaN or Inf in
    # padding does not leak (DeepCTR's 0 * key would).
    keys = tf.where(used[:, :, tf.newaxis], tf.cast(keys, acc), tf.zeros([], acc))
    return tf.cast(tf.matmul(score, keys), dtype)


@tf.RegisterGradient("DeepCTR>AttentionPool")
def _attention_pool_grad(op, grad, _activations_grad=None):
    n = op.get_attr("N")
    query, keys, rows = op.inputs[:3]
    kernels = list(op.inputs[3:3 + n])
    biases = list(op.inputs[3 + n:3 + 2 * n])
    outs = _loader.load().DeepCTR_AttentionPoolGrad(
        query=query, keys=keys, rows=rows, kernels=kernels, biases=biases,
        activations=op.outputs[1], grad=grad,
        activation=op.get_attr("activation"),
        weight_normalization=op.get_attr("weight_normalization"),
        return_score=op.get_attr("return_score"))
    return [outs.grad_query, outs.grad_keys, None] + list(outs.grad_kernels) + list(
        outs.grad_biases)


@tf.RegisterGradient("DeepCTR>AttentionPoolGrad")
def _attention_pool_grad_grad(op, *grads):
    raise LookupError(
        "DeepCTR>AttentionPoolGrad has no gradient: second derivatives of the fused attention "
        "pooling are not implemented. Use deepctr_ops.set_implementation('tf') (the composite "
        "twin) for higher-order gradients.")
