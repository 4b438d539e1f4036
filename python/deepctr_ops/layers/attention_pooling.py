"""AttentionSequencePoolingLayer (DIN) with DeepCTR 0.9.4's signature, weights,
config and numbers (spec section 4), on the fused `DeepCTR>AttentionPool` op."""

from __future__ import annotations

import tensorflow as tf

from ..compat import Layer, keras, register_serializable
from ..ops.attention_pool import activation_function, attention_pool, fused_activation_name
from ._sublayers import build_sublayer
from .pooling import _CustomOpLayer

_SEED = 1024  # DeepCTR fixes LocalActivationUnit's seed (spec 12.16).


class Dice(Layer):
    """DeepCTR's Dice: ``alpha * (1 - p) * x + p * x`` with ``p = sigmoid(BN(x))``.

    BatchNormalization(axis=-1, epsilon=1e-9, center=False, scale=False): batch
    moments over every axis but the last in training, moving averages otherwise.
    Weights: ``dice_alpha`` (zeros), then the BN's ``moving_mean``/``moving_variance``.
    Built in ``build`` (DeepCTR builds the BN on first call).
    """

    def __init__(self, axis=-1, epsilon=1e-9, **kwargs):
        self.axis = axis
        self.epsilon = epsilon
        super().__init__(**kwargs)

    def build(self, input_shape):
        self.bn = keras.layers.BatchNormalization(
            axis=self.axis, epsilon=self.epsilon, center=False, scale=False)
        self.alphas = self.add_weight(shape=(int(input_shape[-1]),),
                                      initializer=keras.initializers.Zeros(), dtype="float32",
                                      name="dice_alpha")
        build_sublayer(self.bn, input_shape)
        super().build(input_shape)

    def call(self, inputs, training=None, **kwargs):
        inputs_normed = self.bn(inputs, training=training)
        x_p = tf.sigmoid(inputs_normed)
        return tf.cast(self.alphas, inputs.dtype) * (1.0 - x_p) * inputs + x_p * inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {"axis": self.axis, "epsilon": self.epsilon}
        return dict(list(super().get_config().items()) + list(config.items()))


def _activation_layer(activation):
    """DeepCTR's activation_layer: Dice for 'dice'/'Dice', an instance for a Layer class,
    None for what is applied as a plain function (strings, None)."""
    if activation in ("dice", "Dice"):
        return Dice()
    if isinstance(activation, type) and issubclass(activation, Layer):
        return activation()
    return None


class _DNN(Layer):
    """The weights of DeepCTR's DNN as LocalActivationUnit uses it (l2_reg=0,
    dropout 0, no BN): ``kernel{i}`` (glorot_normal, seed 1024, l2(0)), ``bias{i}``,
    then the activation layers' weights (Dice)."""

    def __init__(self, hidden_units, activation, **kwargs):
        self.hidden_units = tuple(hidden_units)
        self.activation = activation
        super().__init__(**kwargs)

    def build(self, input_shape):
        units = [int(input_shape[-1])] + list(self.hidden_units)
        self.kernels = [self.add_weight(
            name=f"kernel{i}", shape=(units[i], units[i + 1]),
            initializer=keras.initializers.GlorotNormal(seed=_SEED),
            regularizer=keras.regularizers.l2(0.0), trainable=True)
            for i in range(len(self.hidden_units))]
        self.bias = [self.add_weight(name=f"bias{i}", shape=(units[i + 1],),
                                     initializer=keras.initializers.Zeros(), trainable=True)
                     for i in range(len(self.hidden_units))]
        self.activation_layers = [_activation_layer(self.activation)
                                  for _ in self.hidden_units]
        for layer, width in zip(self.activation_layers, self.hidden_units):
            if layer is not None:
                build_sublayer(layer, tuple(input_shape[:-1]) + (width,))
        super().build(input_shape)

    def activation_fns(self, training=None) -> list:
        """One callable per hidden layer, for the composite twin."""
        fns = []
        for layer in self.activation_layers:
            if layer is None:
                fns.append(activation_function(self.activation))
            else:
                fns.append(lambda x, layer=layer: layer(x, training=training))
        return fns


class _LocalActivationUnit(Layer):
    """The weights of DeepCTR's LocalActivationUnit: ``kernel`` [h_last or 4E, 1]
    (glorot_normal, seed 1024), ``bias`` [1], then its DNN's."""

    def __init__(self, hidden_units, activation, **kwargs):
        self.hidden_units = tuple(hidden_units)
        self.activation = activation
        super().__init__(**kwargs)

    def build(self, input_shape):
        embedding = int(input_shape[0][-1])
        size = 4 * embedding if len(self.hidden_units) == 0 else self.hidden_units[-1]
        self.kernel = self.add_weight(shape=(size, 1),
                                      initializer=keras.initializers.GlorotNormal(seed=_SEED),
                                      name="kernel")
        self.bias = self.add_weight(shape=(1,), initializer=keras.initializers.Zeros(),
                                    name="bias")
        self.dnn = _DNN(self.hidden_units, self.activation, name="dnn")
        keys_shape = tuple(input_shape[1])
        build_sublayer(self.dnn, keys_shape[:-1] + (4 * embedding,))
        super().build(input_shape)

    @property
    def all_kernels(self) -> list:
        return list(self.dnn.kernels) + [self.kernel]

    @property
    def all_biases(self) -> list:
        return list(self.dnn.bias) + [self.bias]


@register_serializable
class AttentionSequencePoolingLayer(_CustomOpLayer):
    """The Attentional sequence pooling operation used in DIN.

    Input shape
      - A list of three tensor: [query,keys,keys_length]
      - query is a 3D tensor with shape:  ``(batch_size, 1, embedding_size)``
      - keys is a 3D tensor with shape:   ``(batch_size, T, embedding_size)``
      - keys_length is a 2D tensor with shape: ``(batch_size, 1)``
      - With ``supports_masking=True``: [query, keys], the keys carrying a Keras
        mask ``(batch_size, T)`` (any pattern).

    Output shape
      - 3D tensor with shape: ``(batch_size, 1, embedding_size)``, or the scores
        ``(batch_size, 1, T)`` with ``return_score=True``.

    Arguments
      - **att_hidden_units**: list of positive integer, the attention net layer
        number and units in each layer.
      - **att_activation**: Activation function to use in attention net.
      - **weight_normalization**: bool. Whether normalize the attention score of
        local activation unit.
      - **return_score**: bool. Return the (masked, normalized) scores instead.
      - **supports_masking**: If True, the input need to support masking.

    Numbers and weights are DeepCTR's: scores are the linear output of
    LocalActivationUnit's MLP over ``[q, k, q-k, q*k]``; invalid steps get
    ``-2**32+1`` before the softmax (normalization; a row without a valid step
    is the mean of all T keys) or 0. Weights, in DeepCTR's order: ``kernel,
    bias, kernel0..kernel{n-1}, bias0..bias{n-1}`` and, with ``'dice'``, each
    Dice's ``dice_alpha`` and BN moving statistics.

    Differences from DeepCTR: sigmoid/relu/tanh/linear run as one fused op that
    never builds the ``(B, T, 4E)`` input and scores only valid steps; other
    activations (``'dice'``, any other Keras activation or Layer class) run
    DeepCTR's graph on stock TF ops (the composite twin). Fixes: sub-layers
    are built in ``build`` (from_config + set_weights and model loading work
    under Keras 3); masks are treated as boolean.
    """

    def __init__(self, att_hidden_units=(80, 40), att_activation="sigmoid",
                 weight_normalization=False, return_score=False, supports_masking=False,
                 **kwargs):
        self.att_hidden_units = att_hidden_units
        self.att_activation = att_activation
        self.weight_normalization = weight_normalization
        self.return_score = return_score
        super().__init__(**kwargs)
        self.supports_masking = supports_masking

    def build(self, input_shape):
        if not self.supports_masking:
            if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 3:
                raise ValueError("A `AttentionSequencePoolingLayer` layer should be called "
                                 "on a list of 3 inputs")
            ranks = [len(tf.TensorShape(s)) for s in input_shape]
            if ranks != [3, 3, 2]:
                raise ValueError(
                    "Unexpected inputs dimensions,the 3 tensor dimensions are "
                    f"{ranks[0]},{ranks[1]} and {ranks[2]} , expect to be 3,3 and 2")
            query, keys, lengths = (tf.TensorShape(s) for s in input_shape)
            if query[-1] != keys[-1] or query[1] != 1 or lengths[1] != 1:
                raise ValueError(
                    "A `AttentionSequencePoolingLayer` layer requires inputs of a 3 tensor with "
                    "shape (None,1,embedding_size),(None,T,embedding_size) and (None,1)"
                    f"Got different shapes: {input_shape}")
        else:
            if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
                raise ValueError("A `AttentionSequencePoolingLayer` with supports_masking=True "
                                 "should be called on a list of 2 inputs [query, keys]")
            query, keys = (tf.TensorShape(s) for s in input_shape)
            if query.rank != 3 or keys.rank != 3 or query[-1] != keys[-1] or query[1] != 1:
                raise ValueError(
                    "A `AttentionSequencePoolingLayer` layer requires inputs of shape "
                    f"(None,1,embedding_size) and (None,T,embedding_size), got {input_shape}")
        self.local_att = _LocalActivationUnit(self.att_hidden_units, self.att_activation,
                                              name="local_activation_unit")
        build_sublayer(self.local_att, [tuple(query.as_list()), tuple(keys.as_list())])
        super().build(input_shape)

    def call(self, inputs, mask=None, training=None, **kwargs):
        if self.supports_masking:
            if mask is None or (isinstance(mask, (list, tuple)) and mask[-1] is None):
                raise ValueError("When supports_masking=True,input must support masking")
            queries, keys = inputs
            key_mask = mask[-1] if isinstance(mask, (list, tuple)) else mask
            rows = {"mask": key_mask}
        else:
            queries, keys, keys_length = inputs
            rows = {"lengths": keys_length}
        lau = self.local_att
        fused = fused_activation_name(self.att_activation)
        activation = fused if fused is not None else lau.dnn.activation_fns(training)
        return attention_pool(
            queries, keys, lau.all_kernels, lau.all_biases, activation=activation,
            weight_normalization=self.weight_normalization, return_score=self.return_score,
            **rows)

    def compute_output_shape(self, input_shape):
        if self.return_score:
            return (None, 1, tf.TensorShape(input_shape[1])[1])
        return (None, 1, tf.TensorShape(input_shape[0])[-1])

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = {"att_hidden_units": self.att_hidden_units,
                  "att_activation": self.att_activation,
                  "weight_normalization": self.weight_normalization,
                  "return_score": self.return_score,
                  "supports_masking": self.supports_masking}
        base_config = super().get_config()
        return dict(list(base_config.items()) + list(config.items()))
