"""BiLSTM with DeepCTR 0.9.4's signature, weights, config and numbers (spec section 5)."""

from __future__ import annotations

import tensorflow as tf

from ..compat import Layer, keras, register_serializable
from ._sublayers import build_sublayer

MERGE_MODES = ("fw", "bw", "sum", "mul", "ave", "concat", None)


@register_serializable
class BiLSTM(Layer):
    """A multiple layer Bidirectional Residual LSTM Layer.

    Input shape
      - 3D tensor with shape ``(batch_size, timesteps, input_dim)``.

    Output shape
      - 3D tensor with shape: ``(batch_size, timesteps, units)``
        (``2 * units`` for ``merge_mode='concat'``; a list of two such tensors
        for ``merge_mode=None``).

    Arguments
      - **units**: Positive integer, dimensionality of the output space.
      - **layers**: Positive integer, number of LSTM layers to stacked.
      - **res_layers**: Positive integer, number of residual connection to used
        in last ``res_layers`` (needs ``units == input_dim``).
      - **dropout_rate**: Float between 0 and 1. Fraction of the units to drop
        for the linear transformation of the inputs (training only).
      - **merge_mode**: Mode by which outputs of the forward and backward RNNs
        will be combined. One of {``'fw'``, ``'bw'``, ``'sum'``, ``'mul'``,
        ``'concat'``, ``'ave'``, ``None``}. If None, the outputs will not be
        combined, they will be returned as a list.

    Sub-layers and numbers are DeepCTR's: per level a forward and a backward
    Keras ``LSTM(units, dropout=dropout_rate, bias_initializer='ones',
    return_sequences=True, unroll=True)`` (the backward one with
    ``go_backwards=True``, its output flipped back to time order); residuals
    are added per direction; zero initial states.

    Masks: a Keras mask on the input (e.g. after ``Masking`` or
    ``Embedding(mask_zero=True)``) reaches the LSTMs as it does in DeepCTR's
    functional models: masked steps keep (h, c) and emit the carried h. As in
    DeepCTR the mask follows the LSTM outputs from level to level and is lost
    after a level that adds a residual (a plain ``+``), so later levels run
    unmasked. ``compute_mask`` returns the input mask.

    Weights: ``kernel (d_in, 4u)``, ``recurrent_kernel (u, 4u)``, ``bias (4u,)``
    per LSTM, ordered all forward levels then all backward levels in *both*
    Keras modes: DeepCTR's tf_keras ``get_weights()`` order, so its weights load
    with ``set_weights``. DeepCTR's layer under Keras 3 orders them interleaved
    (fw_0, bw_0, fw_1, bw_1, ...); convert such a list with
    :meth:`weights_from_keras3_order` first.

    Differences from DeepCTR: an explicit ``mask=`` argument is honoured like a
    carried Keras mask (DeepCTR ignores it eagerly); the LSTMs are built in
    ``build`` (so ``from_config`` + ``set_weights`` and model loading work under
    Keras 3); ``compute_output_shape`` is right when ``units != input_dim`` and
    prints nothing; bad ``units``/``layers``/``res_layers``/``dropout_rate`` are
    ValueErrors.
    """

    def __init__(self, units, layers=2, res_layers=0, dropout_rate=0.2, merge_mode="ave",
                 **kwargs):
        if merge_mode not in MERGE_MODES:
            raise ValueError('Invalid merge mode. Merge mode should be one of '
                             '{"fw","bw","sum", "mul", "ave", "concat", None}, '
                             f"got merge_mode={merge_mode!r}")
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(f"units must be an integer >= 1, got {units!r}")
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
            raise ValueError(f"layers must be an integer >= 1, got {layers!r}")
        if not isinstance(res_layers, int) or not 0 <= res_layers <= layers:
            raise ValueError(f"res_layers must be an integer in [0, layers], got {res_layers!r}")
        if not 0 <= dropout_rate < 1:
            raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate!r}")
        self.units = units
        self.layers = layers
        self.res_layers = res_layers
        self.dropout_rate = dropout_rate
        self.merge_mode = merge_mode
        super().__init__(**kwargs)
        self.supports_masking = True

    def _lstm(self, backwards: bool):
        return keras.layers.LSTM(self.units, dropout=self.dropout_rate, bias_initializer="ones",
                                 return_sequences=True, go_backwards=backwards, unroll=True)

    def build(self, input_shape):
        shape = tf.TensorShape(input_shape)
        if shape.rank != 3:
            raise ValueError(
                f"Unexpected inputs dimensions {shape.rank}, expect to be 3 dimensions")
        time, dim = shape[1], shape[2]
        if self.res_layers and dim != self.units:
            raise ValueError(
                f"res_layers={self.res_layers} adds each level's input to its output, which "
                f"needs units == input_dim, got units={self.units}, input_dim={dim}")
        # All forward LSTMs, then all backward ones: this creation order fixes the
        # weight order in Keras 3 as well (tf_keras: attribute order).
        self.fw_lstm = []
        self.bw_lstm = []
        for i in range(self.layers):
            self.fw_lstm.append(self._lstm(backwards=False))
            build_sublayer(self.fw_lstm[i], (None, time, dim if i == 0 else self.units))
        for i in range(self.layers):
            self.bw_lstm.append(self._lstm(backwards=True))
            build_sublayer(self.bw_lstm[i], (None, time, dim if i == 0 else self.units))
        super().build(input_shape)

    def call(self, inputs, mask=None, training=None, **kwargs):
        input_fw = input_bw = inputs
        level_mask = mask
        for i in range(self.layers):
            output_fw = self.fw_lstm[i](input_fw, mask=level_mask, training=training)
            output_bw = tf.reverse(
                self.bw_lstm[i](input_bw, mask=level_mask, training=training), axis=[1])
            if i >= self.layers - self.res_layers:
                output_fw += input_fw
                output_bw += input_bw
                level_mask = None  # DeepCTR's `+` drops the Keras mask.
            input_fw, input_bw = output_fw, output_bw

        if self.merge_mode == "fw":
            return input_fw
        if self.merge_mode == "bw":
            return input_bw
        if self.merge_mode == "concat":
            return tf.concat([input_fw, input_bw], axis=-1)
        if self.merge_mode == "sum":
            return input_fw + input_bw
        if self.merge_mode == "ave":
            return (input_fw + input_bw) / 2
        if self.merge_mode == "mul":
            return input_fw * input_bw
        return [input_fw, input_bw]

    def compute_output_shape(self, input_shape):
        shape = tuple(tf.TensorShape(input_shape).as_list())
        units = 2 * self.units if self.merge_mode == "concat" else self.units
        out = shape[:-1] + (units,)
        if self.merge_mode is None:
            return [out, out]
        return out

    def compute_mask(self, inputs, mask=None):
        if self.merge_mode is None:
            return [mask, mask]
        return mask

    def get_config(self):
        config = {"units": self.units, "layers": self.layers, "res_layers": self.res_layers,
                  "dropout_rate": self.dropout_rate, "merge_mode": self.merge_mode}
        base_config = super().get_config()
        return dict(list(base_config.items()) + list(config.items()))

    @staticmethod
    def weights_from_keras3_order(weights, layers):
        """DeepCTR BiLSTM weights listed fw_0, bw_0, fw_1, bw_1, ... (its Keras 3
        order) -> fw_0 .. fw_{L-1}, bw_0 .. bw_{L-1} (this layer's order)."""
        weights = list(weights)
        if len(weights) != 6 * layers:
            raise ValueError(f"expected {6 * layers} arrays for layers={layers}, "
                             f"got {len(weights)}")
        per_lstm = [weights[3 * j:3 * j + 3] for j in range(2 * layers)]
        fw = [w for j in range(layers) for w in per_lstm[2 * j]]
        bw = [w for j in range(layers) for w in per_lstm[2 * j + 1]]
        return fw + bw
