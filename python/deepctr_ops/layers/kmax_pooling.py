"""KMaxPooling with DeepCTR 0.9.4's signature, config and numbers (spec section 9)."""

from __future__ import annotations

import tensorflow as tf

from ..compat import Layer, register_serializable


@register_serializable
class KMaxPooling(Layer):
    """K Max pooling that selects the k biggest value along the specific axis.

    Input shape
      - nD tensor with shape: ``(batch_size, ..., input_dim)``.

    Output shape
      - nD tensor with shape: ``(batch_size, ..., output_dim)``, where the size
        of ``axis`` becomes ``k``.

    Arguments
      - **k**: positive integer, number of top elements to look for along the
        ``axis`` dimension.
      - **axis**: integer, the dimension to look for elements. Negative values
        count from the end.

    Values come out in descending order (``top_k(sorted=True)``) and the
    gradient flows to the selected entries, as in DeepCTR. Fixes: the default
    ``axis=-1`` means the last axis (DeepCTR's own build rejects it), any
    negative axis works, ``axis == ndims`` is a ValueError rather than an
    IndexError, and ``k < 1`` is rejected in ``__init__``.
    """

    def __init__(self, k=1, axis=-1, **kwargs):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"axis must be an integer, got {axis!r}")
        self.k = k
        self.axis = axis
        super().__init__(**kwargs)

    def _normalized_axis(self, ndims: int) -> int:
        axis = self.axis + ndims if self.axis < 0 else self.axis
        if axis < 1 or axis >= ndims:
            raise ValueError(
                f"axis must be in 1..{ndims - 1} or -{ndims - 1}..-1 for a {ndims}D input "
                f"(axis 0 is the batch), got axis={self.axis}")
        return axis

    def build(self, input_shape):
        shape = tf.TensorShape(input_shape)
        self.dims = shape.rank
        axis = self._normalized_axis(self.dims)
        size = shape[axis]
        if size is not None and self.k > size:
            raise ValueError(f"k must be in 1 ~ {size} for axis {self.axis}, got k={self.k}")
        super().build(input_shape)

    def call(self, inputs):
        ndims = inputs.shape.rank
        axis = self._normalized_axis(ndims)
        if axis == ndims - 1:
            return tf.math.top_k(inputs, k=self.k, sorted=True)[0]
        perm = list(range(ndims))
        perm[-1], perm[axis] = perm[axis], perm[-1]
        top = tf.math.top_k(tf.transpose(inputs, perm), k=self.k, sorted=True)[0]
        return tf.transpose(top, perm)

    def compute_output_shape(self, input_shape):
        shape = list(tf.TensorShape(input_shape).as_list())
        shape[self._normalized_axis(len(shape))] = self.k
        return tuple(shape)

    def get_config(self):
        config = {"k": self.k, "axis": self.axis}
        base_config = super().get_config()
        return dict(list(base_config.items()) + list(config.items()))
