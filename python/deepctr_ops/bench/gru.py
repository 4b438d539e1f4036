"""Benchmark cases of DynamicGRU and BidirectionalDynamicGRU (DIEN-sized).

Lengths are uniform in [0, T]. Each row is timed against DeepCTR's DynamicGRU
(with the six TF aliases TF 2.21 removed put back; it runs inside tf.function,
which is how the runner calls every implementation) and against Keras' GRU fed
the same lengths as a mask (``Bidirectional(GRU)`` for the bidirectional row).
DeepCTR's AGRU/AUGRU weights are invisible to Keras, so its fwd+bwd
differentiates only the inputs; ours also computes the four weight gradients.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .runner import Case


def restore_removed_tf_aliases() -> None:
    """Puts back the six TF internals DeepCTR 0.9.4's DynamicGRU needs (removed in
    TF 2.21). The benchmark and the tests' DeepCTR oracle use it."""
    from tensorflow.python.ops import array_ops, control_flow_ops
    from tensorflow.python.util import nest

    array_ops.stack = getattr(array_ops, "stack", tf.stack)
    array_ops.unstack = getattr(array_ops, "unstack", tf.unstack)
    control_flow_ops.Assert = getattr(control_flow_ops, "Assert", tf.debugging.Assert)
    control_flow_ops.cond = getattr(control_flow_ops, "cond", tf.cond)
    control_flow_ops.while_loop = getattr(control_flow_ops, "while_loop", tf.while_loop)
    nest.is_sequence = getattr(nest, "is_sequence", nest.is_nested)


class _KerasMasked:
    """A Keras RNN layer called as (x, mask = sequence_mask(seq_len, T))."""

    def __init__(self, layer, final_only: bool):
        self.layer = layer
        self.final_only = final_only

    def __call__(self, xs):
        x, seq_len = xs[0], xs[1]
        mask = tf.sequence_mask(tf.reshape(seq_len, [-1]), tf.shape(x)[1])
        out = self.layer(x, mask=mask)
        return out[:, tf.newaxis] if self.final_only else out

    @property
    def trainable_variables(self):
        return self.layer.trainable_variables


class _DeepCTRBidirectional:
    """DeepCTR has no backward GRU: a forward DynamicGRU on each row's reversed
    valid prefix (tf.reverse_sequence), flipped back, concatenated."""

    def __init__(self, forward, backward):
        self.forward, self.backward = forward, backward

    def __call__(self, xs):
        x, seq_len = xs[0], xs[1]
        lengths = tf.clip_by_value(tf.reshape(seq_len, [-1]), 0, tf.shape(x)[1])
        fw = self.forward([x, seq_len])
        x_rev = tf.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0)
        bw = tf.reverse_sequence(self.backward([x_rev, seq_len]), lengths, seq_axis=1,
                                 batch_axis=0)
        return tf.concat([fw, bw], -1)

    @property
    def trainable_variables(self):
        return self.forward.trainable_variables + self.backward.trainable_variables


def _make_inputs(batch, time, emb, attention):
    def make_inputs(rng: np.random.Generator) -> list:
        x = rng.standard_normal((batch, time, emb), dtype=np.float32)
        lens = rng.integers(0, time + 1, size=(batch, 1)).astype(np.int32)
        out = [x, lens]
        if attention:
            out.append(rng.random((batch, time, 1), dtype=np.float32))
        return out

    return make_inputs


def _gru_case(gru_type: str, return_sequence: bool, batch: int, time: int, emb: int) -> Case:
    def ours():
        from ..layers.sequence import DynamicGRU

        return DynamicGRU(emb, gru_type=gru_type, return_sequence=return_sequence)

    def deepctr():
        restore_removed_tf_aliases()
        from deepctr.layers.sequence import DynamicGRU

        return DynamicGRU(emb, gru_type=gru_type, return_sequence=return_sequence)

    def keras_gru():
        return _KerasMasked(tf.keras.layers.GRU(emb, return_sequences=return_sequence),
                            final_only=not return_sequence)

    attention = gru_type in ("AGRU", "AUGRU")
    output = "seq" if return_sequence else "final"
    return Case(
        name=f"DynamicGRU {gru_type} {output} B{batch} T{time} E{emb} len~U[0,T]",
        make_inputs=_make_inputs(batch, time, emb, attention),
        layers={"deepctr_ops": ours, "deepctr": deepctr, "keras": keras_gru},
        differentiate=(0, 2) if attention else (0,),
    )


def _bidirectional_case(batch: int, time: int, emb: int) -> Case:
    def ours():
        from ..layers.sequence import BidirectionalDynamicGRU

        return BidirectionalDynamicGRU(emb, merge_mode="concat")

    def deepctr():
        restore_removed_tf_aliases()
        from deepctr.layers.sequence import DynamicGRU

        return _DeepCTRBidirectional(DynamicGRU(emb), DynamicGRU(emb))

    def keras_gru():
        layer = tf.keras.layers.Bidirectional(tf.keras.layers.GRU(emb, return_sequences=True))
        return _KerasMasked(layer, final_only=False)

    return Case(
        name=f"BidirectionalDynamicGRU GRU concat B{batch} T{time} E{emb} len~U[0,T]",
        make_inputs=_make_inputs(batch, time, emb, False),
        layers={"deepctr_ops": ours, "deepctr": deepctr, "keras": keras_gru},
    )


def cases() -> list[Case]:
    out = []
    for batch, time, emb in ((256, 50, 32), (1024, 100, 64)):
        out.append(_gru_case("GRU", True, batch, time, emb))
        out.append(_gru_case("AUGRU", False, batch, time, emb))
    out.append(_bidirectional_case(256, 50, 32))
    return out
