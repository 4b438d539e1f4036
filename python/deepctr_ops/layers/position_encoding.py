"""PositionEncoding with DeepCTR 0.9.4's signature, weights and numbers (spec section 7)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..compat import Layer, register_serializable


def sinusoid_table(length: int, units: int, zero_pad: bool = False) -> np.ndarray:
    """DeepCTR's table: pos / 10000^(2*(i//2)/units), sin on even columns, cos on odd.

    Computed in float64 and returned as float32, as DeepCTR stores it.
    """
    pos = np.arange(length, dtype=np.float64)[:, None]
    exponent = 2.0 * (np.arange(units) // 2) / units
    table = pos / np.power(10000.0, exponent)[None, :]
    table[:, 0::2] = np.sin(table[:, 0::2])
    table[:, 1::2] = np.cos(table[:, 1::2])
    if zero_pad:
        table[0, :] = 0.0
    return table.astype(np.float32)


class _TableInitializer:
    """Initializer returning a fixed table (not serialized: build recomputes it)."""

    def __init__(self, table: np.ndarray):
        self.table = table

    def __call__(self, shape, dtype=None, **kwargs):
        return tf.constant(self.table, dtype=dtype or tf.float32)


@register_serializable
class PositionEncoding(Layer):
    """Adds a (trainable) sinusoidal position table to a sequence.

    Input shape
      - 3D tensor with shape: ``(batch_size, T, embedding_size)``.

    Output shape
      - 3D tensor with shape: ``(batch_size, T, embedding_size)``.

    Arguments
      - **pos_embedding_trainable**: bool. Whether the table (weight
        ``lookup_table``, shape ``(T, embedding_size)``) is trainable.
      - **zero_pad**: bool. Whether row 0 of the table is zeros.
      - **scale**: bool. Whether the *table* is multiplied by
        ``sqrt(embedding_size)`` (DeepCTR scales the table, not the inputs).

    Same numbers, weight and config as DeepCTR. Fix: works under Keras 3
    (DeepCTR passes the weight name positionally to ``add_weight``).
    """

    def __init__(self, pos_embedding_trainable=True, zero_pad=False, scale=True, **kwargs):
        self.pos_embedding_trainable = pos_embedding_trainable
        self.zero_pad = zero_pad
        self.scale = scale
        super().__init__(**kwargs)

    def build(self, input_shape):
        shape = tf.TensorShape(input_shape)
        if shape.rank != 3 or shape[1] is None or shape[2] is None:
            raise ValueError(
                f"PositionEncoding needs a (batch, T, E) input with known T and E, got {shape}")
        length, units = int(shape[1]), int(shape[2])
        self.lookup_table = self.add_weight(
            name="lookup_table", shape=(length, units), dtype="float32",
            initializer=_TableInitializer(sinusoid_table(length, units, self.zero_pad)),
            trainable=self.pos_embedding_trainable)
        super().build(input_shape)

    def call(self, inputs, mask=None):
        length, units = inputs.shape[1], inputs.shape[2]
        table = self.lookup_table[:length]
        if self.scale:
            table = table * (units**0.5)
        return table[None] + inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        config = {
            "pos_embedding_trainable": self.pos_embedding_trainable,
            "zero_pad": self.zero_pad,
            "scale": self.scale,
        }
        base_config = super().get_config()
        return dict(list(base_config.items()) + list(config.items()))
