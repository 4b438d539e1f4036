"""DeepCTR 0.9.4's own DynamicGRU as a test oracle.

DeepCTR's DynamicGRU needs six TF internals that TF 2.21 removed
(array_ops.stack/unstack, control_flow_ops.Assert/cond/while_loop,
nest.is_sequence); `restore_removed_tf_aliases` puts them back. With them it
runs only inside tf.function, and its AGRU/AUGRU weights are created there by
tf.compat.v1.get_variable, invisible to Keras. `deepctr_dynamic_gru` therefore
sets every cell's weights through its initializers (told apart by shape) and
differentiates with respect to the variables the tape saw.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from deepctr_ops.bench.gru import restore_removed_tf_aliases


def _by_shape(arrays: dict[tuple, np.ndarray]):
    def initializer(shape, dtype=None, **kwargs):
        return tf.constant(arrays[tuple(int(d) for d in shape)], dtype=dtype or tf.float32)

    return initializer


WEIGHT_KEYS = ("gates/kernel", "gates/bias", "candidate/kernel", "candidate/bias")


def deepctr_dynamic_gru(gru_type, return_sequence, x, seq_len, weights, att=None,
                        upstream_seed=7):
    """Runs deepctr.layers.sequence.DynamicGRU inside tf.function with `weights`
    ([Wg, bg, Wc, bc]); returns (output, {name: gradient}) for the loss
    sum(output * upstream), with gradients for "x", "att" and the four weights."""
    restore_removed_tf_aliases()
    from deepctr.layers.sequence import DynamicGRU

    wg, bg, wc, bc = (np.asarray(w, np.float32) for w in weights)
    layer = DynamicGRU(num_units=wc.shape[1], gru_type=gru_type, return_sequence=return_sequence)
    inputs = [tf.constant(x, tf.float32), tf.constant(seq_len)]
    if att is not None:
        inputs.append(tf.constant(att, tf.float32))
    shapes = [i.shape for i in inputs]
    layer.build(shapes)
    layer.gru_cell._kernel_initializer = _by_shape({wg.shape: wg, wc.shape: wc})
    layer.gru_cell._bias_initializer = _by_shape({bg.shape: bg, bc.shape: bc})
    names: list[str] = []

    @tf.function
    def run(*tensors):
        with tf.GradientTape() as tape:
            tape.watch(tensors[0])
            if len(tensors) > 2:
                tape.watch(tensors[2])
            out = layer(list(tensors))
            upstream = tf.constant(np.random.default_rng(upstream_seed).standard_normal(
                out.shape.as_list()), tf.float32)
            loss = tf.reduce_sum(out * upstream)
        variables = [v for v in tape.watched_variables()]
        names[:] = [next(k for k in WEIGHT_KEYS if k in v.name) for v in variables]
        sources = [tensors[0]] + ([tensors[2]] if len(tensors) > 2 else []) + variables
        return out, tape.gradient(loss, sources)

    out, grads = run(*inputs)
    keys = ["x"] + (["att"] if att is not None else []) + names
    result = {k: g.numpy() for k, g in zip(keys, grads)}
    assert sorted(names) == sorted(WEIGHT_KEYS), names
    return out.numpy(), result
