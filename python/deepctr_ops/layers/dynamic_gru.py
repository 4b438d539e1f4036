"""DynamicGRU (DeepCTR 0.9.4's signature, weights, config and numbers; spec
section 10) and BidirectionalDynamicGRU, on the fused `DeepCTR>DynamicGru` op."""

from __future__ import annotations

import tensorflow as tf

from ..compat import IS_KERAS_3, register_serializable
from ..ops.dynamic_gru import CELLS, bidirectional_dynamic_gru, dynamic_gru
from ._sublayers import build_sublayer
from .pooling import _CustomOpLayer

MERGE_MODES = ("fw", "bw", "sum", "mul", "ave", "concat", None)


def _weight_name(scope: str, kind: str) -> str:
    # tf_keras keeps DeepCTR's GRUCell names (gates/kernel ...); Keras 3
    # forbids "/" in weight names.
    return f"{scope}_{kind}" if IS_KERAS_3 else f"{scope}/{kind}"


def _input_shapes(input_shape):
    if not isinstance(input_shape, (list, tuple)) or len(input_shape) not in (2, 3) or not all(
            isinstance(s, (list, tuple, tf.TensorShape)) for s in input_shape):
        raise ValueError("DynamicGRU takes a list [inputs, seq_len] or "
                         f"[inputs, seq_len, att_score], got input_shape {input_shape}")
    return [tf.TensorShape(s) for s in input_shape]


@register_serializable
class DynamicGRU(_CustomOpLayer):
    """DeepCTR's DynamicGRU (DIEN's interest extractor/evolution GRU).

    Input
      - ``[inputs (B, T, E), seq_len (B, 1)]`` for ``gru_type`` GRU and AIGRU
        (AIGRU is a GRU on inputs already multiplied by the attention);
      - ``[inputs, seq_len, att_score (B, T, 1)]`` for AGRU and AUGRU.

    Output: ``(B, T, num_units)`` (zeros past each length) with
    ``return_sequence=True``, else the final state ``(B, 1, num_units)``: the
    state after step len-1, zeros for len 0. Lengths are clamped to [0, T];
    float lengths truncate.

    Weights ``[gates/kernel (E+u, 2u), gates/bias (2u), candidate/kernel
    (E+u, u), candidate/bias (u)]`` for every gru_type (Keras 3 names them
    ``gates_kernel`` ...): DeepCTR's layout (reset half of the gates first),
    glorot-uniform kernels, gate bias 1, candidate bias 0. The cells are
    DeepCTR's: GRU ``h' = z h + (1 - z) c``; AGRU ``h' = (1 - a) h + a c``;
    AUGRU ``z~ = (1 - a) z, h' = z~ h + (1 - z~) c``.

    Extension: ``go_backwards=True`` runs each row from len-1 down to 0 and
    returns the outputs at their original positions (its final state is the
    one after step 0).

    Differences from DeepCTR (fixes): runs eagerly, in ``tf.function`` and in
    functional/saved models in both Keras modes; the AGRU/AUGRU weights are
    tracked (saved, trained by ``fit``); batch size 1 works; an unknown
    ``gru_type`` is a ValueError; ``compute_output_shape`` is right when
    ``num_units != E``.
    """

    def __init__(self, num_units=None, gru_type="GRU", return_sequence=True, go_backwards=False,
                 **kwargs):
        if gru_type not in CELLS:
            raise ValueError(f"gru_type must be one of {CELLS}, got {gru_type!r}")
        if num_units is not None and (isinstance(num_units, bool) or not isinstance(num_units, int)
                                      or num_units < 1):
            raise ValueError(f"num_units must be None or an integer >= 1, got {num_units!r}")
        self.num_units = num_units
        self.gru_type = gru_type
        self.return_sequence = return_sequence
        self.go_backwards = go_backwards
        super().__init__(**kwargs)

    @property
    def _uses_attention(self) -> bool:
        return self.gru_type in ("AGRU", "AUGRU")

    def _check_input_count(self, count: int) -> None:
        if self._uses_attention and count != 3:
            raise ValueError(f"gru_type {self.gru_type} needs att_score: inputs must be "
                             f"[inputs, seq_len, att_score], got {count} tensors")
        if not self._uses_attention and count != 2:
            raise ValueError(f"gru_type {self.gru_type} takes no att_score: inputs must be "
                             f"[inputs, seq_len], got {count} tensors")

    def build(self, input_shape):
        shapes = _input_shapes(input_shape)
        self._check_input_count(len(shapes))
        seq = shapes[0]
        if seq.rank != 3 or seq[-1] is None:
            raise ValueError(f"inputs must have shape (batch, T, E) with known E, got {seq}")
        dim = int(seq[-1])
        if self.num_units is None:
            self.num_units = dim
        u = self.num_units
        self.gates_kernel = self.add_weight(
            name=_weight_name("gates", "kernel"), shape=(dim + u, 2 * u),
            initializer="glorot_uniform")
        self.gates_bias = self.add_weight(
            name=_weight_name("gates", "bias"), shape=(2 * u,), initializer="ones")
        self.candidate_kernel = self.add_weight(
            name=_weight_name("candidate", "kernel"), shape=(dim + u, u),
            initializer="glorot_uniform")
        self.candidate_bias = self.add_weight(
            name=_weight_name("candidate", "bias"), shape=(u,), initializer="zeros")
        super().build(input_shape)

    def _split_inputs(self, input_list, layer_name="DynamicGRU"):
        """(inputs, seq_len, att_score or None), after checking the count."""
        if not isinstance(input_list, (list, tuple)):
            raise ValueError(f"{layer_name} takes a list [inputs, seq_len(, att_score)]")
        self._check_input_count(len(input_list))
        att = input_list[2] if self._uses_attention else None
        return input_list[0], input_list[1], att

    def _op_weights(self, dtype):
        """[Wg, bg, Wc, bc] in `dtype`, as the dynamic GRU ops take them."""
        return [tf.cast(w, dtype) for w in (self.gates_kernel, self.gates_bias,
                                            self.candidate_kernel, self.candidate_bias)]

    def call(self, input_list, **kwargs):
        x, seq_len, att = self._split_inputs(input_list)
        outputs, final = dynamic_gru(x, seq_len, *self._op_weights(x.dtype), att_scores=att,
                                     cell=self.gru_type, reverse=self.go_backwards)
        if self.return_sequence:
            return outputs
        return tf.expand_dims(final, axis=1)

    def compute_output_shape(self, input_shape):
        seq = _input_shapes(input_shape)[0]
        units = self.num_units if self.num_units is not None else seq[-1]
        if self.return_sequence:
            return tf.TensorShape([seq[0], seq[1], units])
        return tf.TensorShape([seq[0], 1, units])

    def get_config(self):
        config = {"num_units": self.num_units, "gru_type": self.gru_type,
                  "return_sequence": self.return_sequence, "go_backwards": self.go_backwards}
        base_config = super().get_config()
        return dict(list(base_config.items()) + list(config.items()))


@register_serializable
class BidirectionalDynamicGRU(_CustomOpLayer):
    """A forward and a backward DynamicGRU over each row's valid prefix.

    The backward GRU runs each row from len-1 down to 0 (``go_backwards``), so
    padding never enters it, and its outputs stay at their original positions
    (Keras' ``Bidirectional`` walks the whole padded window). Inputs and outputs
    as DynamicGRU's; ``merge_mode`` as BiLSTM's: one of ``'fw'``, ``'bw'``,
    ``'sum'``, ``'mul'``, ``'ave'``, ``'concat'`` (last axis ``2 * num_units``)
    or None (a list ``[forward, backward]``). With ``return_sequence=False``
    the merged final states: the forward one after step len-1, the backward
    one after step 0.

    Weights: the forward GRU's ``[Wg, bg, Wc, bc]``, then the backward one's.
    """

    def __init__(self, num_units=None, gru_type="GRU", merge_mode="concat", return_sequence=True,
                 **kwargs):
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
        if gru_type not in CELLS:
            raise ValueError(f"gru_type must be one of {CELLS}, got {gru_type!r}")
        self.num_units = num_units
        self.gru_type = gru_type
        self.merge_mode = merge_mode
        self.return_sequence = return_sequence
        super().__init__(**kwargs)

    def build(self, input_shape):
        shapes = _input_shapes(input_shape)
        if self.num_units is None:
            self.num_units = shapes[0][-1]
        self.forward_gru = DynamicGRU(self.num_units, self.gru_type, self.return_sequence,
                                      name="forward_gru")
        self.backward_gru = DynamicGRU(self.num_units, self.gru_type, self.return_sequence,
                                       go_backwards=True, name="backward_gru")
        build_sublayer(self.forward_gru, input_shape)
        build_sublayer(self.backward_gru, input_shape)
        super().build(input_shape)

    def call(self, input_list, **kwargs):
        if self.merge_mode == "concat":
            return self._fused_concat(input_list)
        fw = self.forward_gru(input_list)
        bw = self.backward_gru(input_list)
        if self.merge_mode == "fw":
            return fw
        if self.merge_mode == "bw":
            return bw
        if self.merge_mode == "concat":
            return tf.concat([fw, bw], axis=-1)
        if self.merge_mode == "sum":
            return fw + bw
        if self.merge_mode == "ave":
            return (fw + bw) / 2
        if self.merge_mode == "mul":
            return fw * bw
        return [fw, bw]

    def _fused_concat(self, input_list):
        """Both directions in one op that writes the concat layout (measured
        faster than two ops and a concat: the concat and the split of its
        gradient cost ~10% of fwd+bwd at B256 T50 E32)."""
        x, seq_len, att = self.forward_gru._split_inputs(input_list, "BidirectionalDynamicGRU")
        outputs, final = bidirectional_dynamic_gru(
            x, seq_len, self.forward_gru._op_weights(x.dtype),
            self.backward_gru._op_weights(x.dtype), att_scores=att, cell=self.gru_type)
        if self.return_sequence:
            return outputs
        return tf.expand_dims(final, axis=1)

    def compute_output_shape(self, input_shape):
        seq = _input_shapes(input_shape)[0]
        units = self.num_units if self.num_units is not None else seq[-1]
        time = seq[1] if self.return_sequence else 1
        one = tf.TensorShape([seq[0], time, units])
        if self.merge_mode is None:
            return [one, one]
        if self.merge_mode == "concat":
            return tf.TensorShape([seq[0], time, 2 * units])
        return one

    def get_config(self):
        config = {"num_units": self.num_units, "gru_type": self.gru_type,
                  "merge_mode": self.merge_mode, "return_sequence": self.return_sequence}
        base_config = super().get_config()
        return dict(list(base_config.items()) + list(config.items()))
