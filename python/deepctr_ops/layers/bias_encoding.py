"""BiasEncoding (DSIN) with DeepCTR 0.9.4's signature, weights and numbers (spec section 8)."""

from __future__ import annotations

import tensorflow as tf

from ..compat import Layer, keras, register_serializable
from ._shapes import is_shape


@register_serializable
class BiasEncoding(Layer):
    """Adds session, position and item biases to each session of a DSIN history.

    Input shape
      - A list of ``sess_max_count`` 3D tensors, each with shape
        ``(batch_size, T, embedding_size)``.

    Output shape
      - A list of ``sess_max_count`` 3D tensors with the same shapes:
        ``out_i = x_i + item_bias + seq_bias + sess_bias[i]``.

    Arguments
      - **sess_max_count**: positive int, the number of sessions.
      - **seed**: A Python integer to use as random seed.

    Weights (in this order): ``sess_bias_embedding (S,1,1)``,
    ``seq_bias_embedding (1,T,1)``, ``item_bias_embedding (1,1,E)``, all
    TruncatedNormal(0, 1e-4, seed) like DeepCTR (the same seed for all three).

    Fixes: ``sess_max_count=1`` works: a one-element list gives a one-element
    list (DeepCTR indexes the batch axis and returns one ``(1,T,E)`` tensor); a
    single tensor is also accepted and gives a single tensor (session 0).
    Works under Keras 3.
    """

    def __init__(self, sess_max_count, seed=1024, **kwargs):
        if isinstance(sess_max_count, bool) or not isinstance(sess_max_count, int) \
                or sess_max_count < 1:
            raise ValueError(f"sess_max_count must be an integer >= 1, got {sess_max_count!r}")
        self.sess_max_count = sess_max_count
        self.seed = seed
        super().__init__(**kwargs)

    def build(self, input_shape):
        shapes = [input_shape] if is_shape(input_shape) else list(input_shape)
        if len(shapes) != self.sess_max_count:
            raise ValueError(
                f"BiasEncoding(sess_max_count={self.sess_max_count}) needs that many inputs, "
                f"got {len(shapes)}")
        first = tf.TensorShape(shapes[0])
        if first.rank != 3:
            raise ValueError(f"BiasEncoding inputs must be (batch, T, E), got {first}")
        seq_len_max, embed_size = first[1], first[2]

        def init():
            return keras.initializers.TruncatedNormal(mean=0.0, stddev=0.0001, seed=self.seed)

        self.sess_bias_embedding = self.add_weight(
            name="sess_bias_embedding", shape=(self.sess_max_count, 1, 1), initializer=init())
        self.seq_bias_embedding = self.add_weight(
            name="seq_bias_embedding", shape=(1, seq_len_max, 1), initializer=init())
        self.item_bias_embedding = self.add_weight(
            name="item_bias_embedding", shape=(1, 1, embed_size), initializer=init())
        super().build(input_shape)

    def call(self, inputs, mask=None):
        single = not isinstance(inputs, (list, tuple))
        tensors = [inputs] if single else list(inputs)
        outputs = [
            x + self.item_bias_embedding + self.seq_bias_embedding + self.sess_bias_embedding[i]
            for i, x in enumerate(tensors)
        ]
        return outputs[0] if single else outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        config = {"sess_max_count": self.sess_max_count, "seed": self.seed}
        base_config = super().get_config()
        return dict(list(base_config.items()) + list(config.items()))
