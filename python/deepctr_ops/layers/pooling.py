"""SequencePoolingLayer and WeightedSequenceLayer, with DeepCTR 0.9.4's
signatures, shapes, config and numbers (spec sections 2-3)."""

from __future__ import annotations

import tensorflow as tf

from .. import _implementation
from ..compat import Layer, register_serializable
from ..ops import pooling as pool_ops
from ..ops.attention import PADDING_LOGIT
from ._shapes import is_shape


class _CustomOpLayer(Layer):
    """Base of layers whose call may use a custom op.

    XLA cannot compile custom ops. Keras 3 compiles `fit` with XLA by default
    ("auto") unless a layer says it does not support it, so while the custom
    ops are in use the layer says so; with set_implementation("tf") it does not.
    """

    @property
    def supports_jit(self) -> bool:
        return _implementation.get_implementation() == "tf"

    @supports_jit.setter
    def supports_jit(self, value: bool) -> None:  # Keras 3 assigns it in __init__.
        pass


@register_serializable
class SequencePoolingLayer(_CustomOpLayer):
    """Pools variable-length sequence features with sum, mean or max.

    Input shape
      - A list of two tensors [seq_value, seq_len]
      - seq_value is a 3D tensor with shape: ``(batch_size, T, embedding_size)``
      - seq_len is a 2D tensor with shape : ``(batch_size, 1)``, the valid length
        of each sequence (int32, int64 or float, as in DeepCTR).
      - With ``supports_masking=True``: seq_value alone, with a Keras mask.
      - Extension: a ``tf.RaggedTensor`` of shape ``(batch_size, None,
        embedding_size)`` as seq_value alone (no seq_len, no padding).

    Output shape
      - 3D tensor with shape: ``(batch_size, 1, embedding_size)``.

    Arguments
      - **mode**: str. Pooling operation to be used, one of sum, mean or max.
      - **supports_masking**: If True, the input needs to carry a Keras mask.

    Numbers are DeepCTR's: max gives -1e9 for an empty row (gradient 1/T over
    the tied steps); mean divides by ``len + 1e-8``. Differences: a bad mode's
    message names all three modes; in a row with a valid step, padded steps
    never win the max (DeepCTR lets them compete after a -1e9 shift).
    """

    def __init__(self, mode="mean", supports_masking=False, **kwargs):
        self.mode = pool_ops.check_mode(mode)
        self.eps = tf.constant(1e-8, tf.float32)  # DeepCTR's attribute; the ops use MEAN_EPSILON.
        super().__init__(**kwargs)
        self.supports_masking = supports_masking

    def build(self, input_shape):
        if not self.supports_masking and isinstance(input_shape, (list, tuple)) \
                and len(input_shape) == 2 and is_shape(input_shape[0]):
            time = input_shape[0][1]
            self.seq_len_max = int(time) if time is not None else None
        super().build(input_shape)

    def call(self, seq_value_len_list, mask=None, **kwargs):
        if isinstance(seq_value_len_list, tf.RaggedTensor):
            return pool_ops.ragged_sequence_pool(seq_value_len_list, mode=self.mode)
        if self.supports_masking:
            if mask is None:
                raise ValueError("When supports_masking=True,input must support masking")
            return pool_ops.masked_sequence_pool(seq_value_len_list, mask, mode=self.mode)
        if not isinstance(seq_value_len_list, (list, tuple)) or len(seq_value_len_list) != 2:
            raise ValueError(
                "SequencePoolingLayer with supports_masking=False takes [seq_value, seq_len]"
            )
        seq_value, seq_len = seq_value_len_list
        return pool_ops.sequence_pool(seq_value, seq_len, mode=self.mode)

    def compute_output_shape(self, input_shape):
        if self.supports_masking or is_shape(input_shape):
            return (None, 1, _last_dim(input_shape))
        return (None, 1, _last_dim(input_shape[0]))

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = {"mode": self.mode, "supports_masking": self.supports_masking}
        base_config = super().get_config()
        return dict(list(base_config.items()) + list(config.items()))


@register_serializable
class WeightedSequenceLayer(Layer):
    """Applies weight scores to a variable-length sequence feature.

    Input shape
      - A list of three tensors [seq_value, seq_len, seq_weight]
      - seq_value is a 3D tensor with shape: ``(batch_size, T, embedding_size)``
      - seq_len is a 2D tensor with shape : ``(batch_size, 1)``, the valid length
        of each sequence.
      - seq_weight is a 3D tensor with shape: ``(batch_size, T, 1)`` (a 2D
        ``(batch_size, T)`` weight is accepted too).
      - With ``supports_masking=True``: [seq_value, seq_weight] with Keras masks;
        the mask of seq_value is used.

    Output shape
      - 3D tensor with shape: ``(batch_size, T, embedding_size)``.

    Arguments
      - **weight_normalization**: bool. Whether to softmax the weights over T
        (padding gets logit -2**32+1, so an all-padding row is uniform).
      - **supports_masking**: If True, the input needs to carry a Keras mask.
    """

    def __init__(self, weight_normalization=True, supports_masking=False, **kwargs):
        super().__init__(**kwargs)
        self.weight_normalization = weight_normalization
        self.supports_masking = supports_masking

    def build(self, input_shape):
        if not self.supports_masking:
            time = input_shape[0][1]
            self.seq_len_max = int(time) if time is not None else None
        super().build(input_shape)

    def call(self, input_list, mask=None, **kwargs):
        if self.supports_masking:
            # Keras 3 passes [None, None] for inputs without masks.
            if mask is None or mask[0] is None:
                raise ValueError("When supports_masking=True,input must support masking")
            key_input, value_input = input_list
            valid = tf.cast(mask[0], tf.bool)
        else:
            key_input, key_length_input, value_input = input_list
            time = self.seq_len_max if self.seq_len_max is not None else tf.shape(key_input)[1]
            lengths = pool_ops.mask_lengths(tf.reshape(key_length_input, [-1]))
            valid = tf.sequence_mask(lengths, time)
        if value_input.shape.rank == 2:
            value_input = tf.expand_dims(value_input, axis=2)
        valid = tf.expand_dims(valid, axis=2)
        if self.weight_normalization:
            padding = tf.constant(PADDING_LOGIT, value_input.dtype)
            value_input = tf.nn.softmax(tf.where(valid, value_input, padding), axis=1)
        else:
            value_input = tf.where(valid, value_input, tf.zeros([], value_input.dtype))
        return tf.multiply(key_input, value_input)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def compute_mask(self, inputs, mask=None):
        if self.supports_masking:
            return mask[0]
        return None

    def get_config(self):
        config = {
            "weight_normalization": self.weight_normalization,
            "supports_masking": self.supports_masking,
        }
        base_config = super().get_config()
        return dict(list(base_config.items()) + list(config.items()))


def _last_dim(shape):
    dim = tf.TensorShape(shape)[-1]
    return dim if dim is None or isinstance(dim, int) else dim.value
