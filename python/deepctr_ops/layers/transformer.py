"""Transformer with DeepCTR 0.9.4's signature, weights, config and numbers (spec section 6)."""

from __future__ import annotations

import tensorflow as tf

from ..compat import keras, register_serializable
from ..ops.attention import attention_softmax
from ._sublayers import build_sublayer
from .layer_normalization import LayerNormalization
from .pooling import _CustomOpLayer
from .position_encoding import PositionEncoding

ATTENTION_TYPES = ("scaled_dot_product", "cos", "ln", "additive")


@register_serializable
class Transformer(_CustomOpLayer):
    """Simplified version of Transformer proposed in 《Attention is all you need》.

    Input shape
      - a list of two 3D tensors with shape ``(batch_size, timesteps, input_dim)``
        if ``supports_masking=True`` (with Keras masks).
      - a list of four tensors, the first two with shape
        ``(batch_size, timesteps, input_dim)``, the last two with shape
        ``(batch_size, 1)`` (query and key lengths) if ``supports_masking=False``.

    Output shape
      - 3D tensor with shape ``(batch_size, 1, input_dim)`` if
        ``output_type='mean'`` or ``output_type='sum'``, else
        ``(batch_size, timesteps, input_dim)``.

    Arguments
      - **att_embedding_size**: int. The embedding size in multi-head self-attention network.
      - **head_num**: int. The head number in multi-head self-attention network.
      - **dropout_rate**: float between 0 and 1. Fraction of the units to drop.
      - **use_positional_encoding**: bool. Whether or not use positional_encoding.
      - **use_res**: bool. Whether or not use standard residual connections before output.
      - **use_feed_forward**: bool. Whether or not use pointwise feed forward network.
      - **use_layer_norm**: bool. Whether or not use Layer Normalization.
      - **blinding**: bool. Whether or not use blinding.
      - **seed**: A Python integer to use as random seed.
      - **supports_masking**: bool. Whether or not support masking.
      - **attention_type**: str, one of ``'scaled_dot_product'``, ``'cos'``, ``'ln'``,
        ``'additive'``.
      - **output_type**: ``'mean'``, ``'sum'`` or ``None``. Whether or not use
        average/sum pooling for output.

    Numbers are DeepCTR's (spec 6/12.4): padding logit ``-2**32+1`` written into
    the logits, so a query row with no eligible key attends uniformly to all
    keys; padded query rows get zero attention but keep the residual/FFN terms
    and are included in mean/sum pooling; ``use_res=False`` drops the FFN
    output; one LayerNormalization is applied twice; Q/K/V start with stddev
    1.0; no FFN biases. Weights, in DeepCTR's order: ``query, key, value,
    [b, v], [fw1, fw2], [att_ln_q gamma/beta, att_ln_k gamma/beta],
    [ln gamma/beta], [query_pe lookup_table, key_pe lookup_table]``.

    Differences from DeepCTR: the masks are broadcast from ``(B, T)`` and the
    masking + blinding + softmax run as one fused op (DeepCTR tiles
    ``(heads*B, T, T)`` masks); the query mask is applied to the attention
    result instead of the probabilities (the same numbers: it is 0 or 1 per
    query row). Masks are treated as boolean. Fixes: works under Keras 3;
    sub-layers are built in ``build``; an unknown ``attention_type`` is a
    ValueError in ``__init__`` (DeepCTR: at call time);
    ``compute_output_shape`` is right for ``output_type=None``.
    """

    def __init__(self, att_embedding_size=1, head_num=8, dropout_rate=0.0,
                 use_positional_encoding=True, use_res=True, use_feed_forward=True,
                 use_layer_norm=False, blinding=True, seed=1024, supports_masking=False,
                 attention_type="scaled_dot_product", output_type="mean", **kwargs):
        if head_num <= 0:
            raise ValueError(f"head_num must be a int > 0, got {head_num!r}")
        if att_embedding_size <= 0:
            raise ValueError(f"att_embedding_size must be a int > 0, got {att_embedding_size!r}")
        if attention_type not in ATTENTION_TYPES:
            raise ValueError(
                f"attention_type must be one of {ATTENTION_TYPES}, got {attention_type!r}")
        if not 0 <= dropout_rate < 1:
            raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate!r}")
        self.att_embedding_size = att_embedding_size
        self.head_num = head_num
        self.num_units = att_embedding_size * head_num
        self.use_res = use_res
        self.use_feed_forward = use_feed_forward
        self.seed = seed
        self.use_positional_encoding = use_positional_encoding
        self.dropout_rate = dropout_rate
        self.use_layer_norm = use_layer_norm
        self.blinding = blinding
        self.attention_type = attention_type
        self.output_type = output_type
        super().__init__(**kwargs)
        self.supports_masking = supports_masking

    def build(self, input_shape):
        shapes = [tf.TensorShape(s) for s in input_shape]
        expected = 2 if self.supports_masking else 4
        if len(shapes) != expected:
            raise ValueError(
                f"Transformer(supports_masking={self.supports_masking}) takes a list of "
                f"{expected} inputs, got {len(shapes)}")
        query_shape, key_shape = shapes[0], shapes[1]
        embedding_size = int(query_shape[-1])
        if self.num_units != embedding_size:
            raise ValueError(
                "att_embedding_size * head_num must equal the last dimension size of inputs,"
                f"got {self.att_embedding_size} * {self.head_num} != {embedding_size}")
        self.seq_len_max = int(query_shape[-2])
        d, n, seed = self.att_embedding_size, self.num_units, self.seed
        initializers = keras.initializers

        def weight(name, shape, init):
            return self.add_weight(name=name, shape=shape, dtype="float32", initializer=init)

        self.W_Query = weight("query", (embedding_size, n),
                              initializers.TruncatedNormal(stddev=1.0, seed=seed))
        self.W_key = weight("key", (embedding_size, n),
                            initializers.TruncatedNormal(stddev=1.0, seed=seed + 1))
        self.W_Value = weight("value", (embedding_size, n),
                              initializers.TruncatedNormal(stddev=1.0, seed=seed + 2))
        if self.attention_type == "additive":
            self.b = weight("b", (d,), initializers.GlorotUniform(seed=seed))
            self.v = weight("v", (d,), initializers.GlorotUniform(seed=seed))
        if self.use_feed_forward:
            self.fw1 = weight("fw1", (n, 4 * n), initializers.GlorotUniform(seed=seed))
            self.fw2 = weight("fw2", (4 * n, n), initializers.GlorotUniform(seed=seed))
        # Sub-layers, in DeepCTR's attribute order (it fixes the weight order).
        head_shape = (None, self.seq_len_max, d)
        if self.attention_type == "ln":
            self.att_ln_q = LayerNormalization()
            build_sublayer(self.att_ln_q, head_shape)
            self.att_ln_k = LayerNormalization()
            build_sublayer(self.att_ln_k, (None, int(key_shape[-2]), d))
        self.dropout = keras.layers.Dropout(self.dropout_rate, seed=seed)
        self.ln = None
        if self.use_layer_norm:
            self.ln = LayerNormalization()
            build_sublayer(self.ln, (None, self.seq_len_max, n))
        if self.use_positional_encoding:
            self.query_pe = PositionEncoding()
            build_sublayer(self.query_pe, tuple(query_shape.as_list()))
            self.key_pe = PositionEncoding()
            build_sublayer(self.key_pe, tuple(key_shape.as_list()))
        super().build(input_shape)

    def call(self, inputs, mask=None, training=None, **kwargs):
        if self.supports_masking:
            if mask is None or mask[0] is None or mask[1] is None:
                raise ValueError("When supports_masking=True,input must support masking")
            queries, keys = inputs
            query_valid = tf.cast(mask[0], tf.bool)
            key_valid = tf.cast(mask[1], tf.bool)
        else:
            queries, keys, query_len, key_len = inputs
            query_valid = tf.sequence_mask(tf.reshape(query_len, [-1]), self.seq_len_max)
            key_valid = tf.sequence_mask(tf.reshape(key_len, [-1]), self.seq_len_max)

        if self.use_positional_encoding:
            queries = self.query_pe(queries)
            keys = self.key_pe(keys)

        q = self._split_heads(tf.tensordot(queries, self.W_Query, axes=(-1, 0)))
        k = self._split_heads(tf.tensordot(keys, self.W_key, axes=(-1, 0)))
        v = self._split_heads(tf.tensordot(keys, self.W_Value, axes=(-1, 0)))

        scores, divisor = self._scores(q, k)
        probs = attention_softmax(scores, key_valid, divisor=divisor, blinding=self.blinding,
                                  heads=self.head_num)
        probs = self.dropout(probs, training=training)
        result = tf.matmul(probs, v)  # (h*B, Tq, d)
        result = self._merge_heads(result, query_valid)

        if self.use_res:
            result += queries
        if self.use_layer_norm:
            result = self.ln(result)
        if self.use_feed_forward and self.use_res:  # Without use_res DeepCTR drops the FFN.
            hidden = tf.nn.relu(tf.tensordot(result, self.fw1, axes=[-1, 0]))
            hidden = self.dropout(hidden, training=training)
            result += tf.tensordot(hidden, self.fw2, axes=[-1, 0])
        if self.use_feed_forward and self.use_layer_norm:
            result = self.ln(result)

        if self.output_type == "mean":
            return tf.reduce_mean(result, axis=1, keepdims=True)
        if self.output_type == "sum":
            return tf.reduce_sum(result, axis=1, keepdims=True)
        return result

    def _split_heads(self, x):
        """(B, T, h*d) -> (h*B, T, d), head-major rows (DeepCTR's concat(split))."""
        shape = tf.shape(x)
        x = tf.reshape(x, tf.stack([shape[0], shape[1], self.head_num, self.att_embedding_size]))
        x = tf.transpose(x, [2, 0, 1, 3])
        return tf.reshape(x, tf.stack([-1, shape[1], self.att_embedding_size]))

    def _merge_heads(self, x, query_valid):
        """(h*B, T, d) -> (B, T, h*d), zeroing the rows of padded queries."""
        shape = tf.shape(x)
        x = tf.reshape(x, tf.stack([self.head_num, -1, shape[1], shape[2]]))
        x = x * tf.cast(query_valid, x.dtype)[tf.newaxis, :, :, tf.newaxis]
        x = tf.transpose(x, [1, 2, 0, 3])
        return tf.reshape(x, tf.stack([-1, shape[1], self.num_units]))

    def _scores(self, q, k):
        """Raw logits (h*B, Tq, Tk) and the divisor the softmax op applies first."""
        scale = float(self.att_embedding_size) ** 0.5
        if self.attention_type == "scaled_dot_product":
            return tf.matmul(q, k, transpose_b=True), scale
        if self.attention_type == "cos":
            q = tf.math.l2_normalize(q, axis=-1)
            k = tf.math.l2_normalize(k, axis=-1)
            return tf.matmul(q, k, transpose_b=True) * 20, 1.0
        if self.attention_type == "ln":
            return tf.matmul(self.att_ln_q(q), self.att_ln_k(k), transpose_b=True), scale
        # additive
        pairs = tf.tanh(tf.nn.bias_add(q[:, :, tf.newaxis, :] + k[:, tf.newaxis, :, :], self.b))
        return tf.squeeze(tf.tensordot(pairs, self.v[:, tf.newaxis], axes=[-1, 0]), -1), 1.0

    def compute_output_shape(self, input_shape):
        query_shape = tf.TensorShape(input_shape[0])
        time = 1 if self.output_type in ("mean", "sum") else query_shape[1]
        return (query_shape[0], time, self.num_units)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = {
            "att_embedding_size": self.att_embedding_size, "head_num": self.head_num,
            "dropout_rate": self.dropout_rate, "use_res": self.use_res,
            "use_positional_encoding": self.use_positional_encoding,
            "use_feed_forward": self.use_feed_forward, "use_layer_norm": self.use_layer_norm,
            "seed": self.seed, "supports_masking": self.supports_masking,
            "blinding": self.blinding, "attention_type": self.attention_type,
            "output_type": self.output_type,
        }
        base_config = super().get_config()
        return dict(list(base_config.items()) + list(config.items()))
