"""DeepCTR's own LayerNormalization (deepctr.layers.normalization), used by Transformer."""

from __future__ import annotations

import tensorflow as tf

from ..compat import Layer, keras, register_serializable


@register_serializable
class LayerNormalization(Layer):
    """DeepCTR's layer norm: ``(x - mean) / sqrt(var + eps) * gamma + beta``.

    The mean is over ``axis`` and the (biased) variance always over the last
    axis, as in DeepCTR; eps defaults to 1e-9. Weights ``gamma`` (ones) and
    ``beta`` (zeros), shape ``input_shape[-1:]``. Not the Keras layer.
    """

    def __init__(self, axis=-1, eps=1e-9, center=True, scale=True, **kwargs):
        self.axis = axis
        self.eps = eps
        self.center = center
        self.scale = scale
        super().__init__(**kwargs)

    def build(self, input_shape):
        shape = tuple(tf.TensorShape(input_shape).as_list()[-1:])
        self.gamma = self.add_weight(name="gamma", shape=shape,
                                     initializer=keras.initializers.Ones(), trainable=True)
        self.beta = self.add_weight(name="beta", shape=shape,
                                    initializer=keras.initializers.Zeros(), trainable=True)
        super().build(input_shape)

    def call(self, inputs):
        mean = tf.reduce_mean(inputs, axis=self.axis, keepdims=True)
        variance = tf.reduce_mean(tf.square(inputs - mean), axis=-1, keepdims=True)
        outputs = (inputs - mean) / tf.sqrt(variance + self.eps)
        if self.scale:
            outputs = outputs * self.gamma
        if self.center:
            outputs = outputs + self.beta
        return outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {"axis": self.axis, "eps": self.eps, "center": self.center, "scale": self.scale}
        base_config = super().get_config()
        return dict(list(base_config.items()) + list(config.items()))
